//! Readers query without pause while a writer upserts, deletes and rebuilds (publishing new
//! segment generations), and the delta's index flushes and merges its runs in the background. No query may fail or see a torn state, and every retired generation's
//! files must be deleted and unmapped once the last reader lets go.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recostore::{Config, Filter, Item, Method, Query, Store};

const STABLE: usize = 500; // items 0..STABLE are never deleted, so "similar to" always resolves
const CHURN: usize = 1500;

fn item(i: usize, round: usize) -> Item {
    Item::new(
        format!("i{i}"),
        [
            (format!("g{}", (i + round) % 40), 1.0),
            (format!("h{}", i % 9), 0.5),
            (format!("r{}", round % 5), 0.25),
        ],
    )
    .category(if i.is_multiple_of(3) { "a/x" } else { "b" })
    .price((i % 100) as f32)
    .stock((i % 4) as u32)
}

fn queries(n: u64) -> Query {
    let q = match n % 4 {
        0 => Query::similar_to(format!("i{}", n as usize % STABLE)),
        1 => Query::similar_to(format!("i{}", n as usize % STABLE))
            .filter(Filter::new().category("a")),
        2 => Query::profile([(format!("g{}", n % 40), 1.0), (format!("h{}", n % 9), 0.7)]),
        _ => Query::profile([(format!("g{}", n % 40), 1.0)])
            .filter(Filter::new().in_stock().price(10.0, 60.0)),
    };
    q.k(1 + (n % 12) as usize)
}

fn mapped_segments() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(".seg") || l.ends_with(".nbr"))
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn readers_never_fail_or_tear_while_writers_and_rebuilds_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .neighbours(8)
        .rebuild_threshold(None)
        .delta_index_rows(20);
    let store = Store::open_with(dir.path(), config).unwrap();
    let all: Vec<Item> = (0..STABLE + CHURN).map(|i| item(i, 0)).collect();
    store.upsert_items(&all).unwrap();
    store.rebuild().unwrap();

    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let rebuilds = AtomicU64::new(0);
    let most_runs = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(6);
    std::thread::scope(|s| {
        for r in 0..2u64 {
            let (store, stop, answered) = (&store, &stop, &answered);
            s.spawn(move || {
                let mut n = r * 7919;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // One snapshot per check: the fast path and the oracle see the same state.
                    let snap = store.snapshot();
                    let q = queries(n);
                    let fast = snap.query(&q).expect("a query failed during writes").0;
                    let want = snap
                        .query(&q.clone().method(Method::Exhaustive))
                        .expect("oracle failed")
                        .0;
                    let key = |v: &[recostore::Recommendation]| -> Vec<(String, u32)> {
                        v.iter()
                            .map(|r| (r.id.clone(), r.score.to_bits()))
                            .collect()
                    };
                    assert_eq!(key(&fast), key(&want), "torn or wrong answer for {q:?}");
                    for rec in &fast {
                        assert!(snap.item(&rec.id).is_some(), "returned a deleted item");
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let (store, stop, rebuilds, most_runs) = (&store, &stop, &rebuilds, &most_runs);
        s.spawn(move || {
            let mut round = 1;
            while Instant::now() < deadline {
                let batch: Vec<Item> = (0..50)
                    .map(|j| item((round * 53 + j * 31) % (STABLE + CHURN), round))
                    .collect();
                store.upsert_items(&batch).unwrap();
                let doomed: Vec<String> = (0..10)
                    .map(|j| format!("i{}", STABLE + (round * 17 + j * 101) % CHURN))
                    .collect();
                let refs: Vec<&str> = doomed.iter().map(String::as_str).collect();
                store.delete_items(&refs).unwrap();
                most_runs.fetch_max(store.stats().delta_runs as u64, Ordering::Relaxed);
                if round % 12 == 0 {
                    store.rebuild().unwrap();
                    rebuilds.fetch_add(1, Ordering::Relaxed);
                }
                round += 1;
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    assert!(
        rebuilds.load(Ordering::Relaxed) >= 3,
        "too few rebuilds to mean anything"
    );
    assert!(answered.load(Ordering::Relaxed) > 100, "readers barely ran");
    assert!(
        most_runs.load(Ordering::Relaxed) >= 2,
        "the delta's index never held two runs: flushes and merges did not run"
    );

    // Every snapshot of the test is gone: only the current generation may remain.
    let generation = store.stats().generation;
    let keep = [
        recostore::internals::segment::file::file_name(generation),
        recostore::internals::segment::neighbours::file_name(generation),
        format!("{generation:020}.dlt"),
    ];
    let on_disk: Vec<String> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in &on_disk {
        assert!(
            keep.contains(f),
            "retired file {f} was not deleted ({on_disk:?})"
        );
    }
    for m in mapped_segments() {
        assert!(
            keep.iter().any(|k| m.ends_with(k.as_str())),
            "retired generation still mapped: {m}"
        );
    }
}
