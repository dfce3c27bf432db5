//! Event ingestion and scenario latency, each beside a baseline from the same run.
//!
//! Run: `cargo bench --bench scenarios` (`-- ingestion` or `-- scenarios` for one part). Two
//! parts:
//! * **Ingestion**: 200,000 generated events (views, carts, purchases in baskets, ratings) into
//!   a 10,000-item store, group commit, batches of 10,000, then one flush; baseline: the same
//!   number of raw sled inserts (one key per event, the event's encoded bytes) in batches of
//!   10,000 and one flush, in a fresh sled database. Median of 5 alternating rounds, each run in a
//!   fresh process.
//! * **Scenarios**: 1,000,000 generated items (`RECOSTORE_BENCH_ITEMS` changes it) with 24–32
//!   Zipf tags, 500,000 events from up to 50,000 users; p50/p99 of 200 queries per scenario; baseline:
//!   the exhaustive (brute-force) profile scan over the same items.
//! * **Burst** (`-- burst`): for-user p50/p99 on 8 threads right after a write burst that
//!   makes the kept derived relations stale (2,000 events and one deleted user). 200,000 items
//!   (`RECOSTORE_BENCH_ITEMS`), 500,000 events, 20 rounds of 8 × 10 queries each. Its baseline
//!   is another binary: run the same bench from the commit before a change, alternately (issue
//!   20 compared building the derived relations once per generation with building them in
//!   every query that found them stale).
//!
//! Figures go to `bench/RESULTS.md` by hand.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, Method, Query, Store};

mod traffic;
use traffic::{events, skewed};

/// The allocator the `recostore` binary uses (see Cargo.toml's `mimalloc` feature), for both
/// sides of every comparison.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 10_000;
const QUERIES: usize = 200;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// Events/s of one recostore run: a fresh store with the items, then every event batch and the
/// close. With the default `checkpoint_events` (100,000) the timed part holds two checkpoints
/// (on a background thread) and the close waits for them, so all of the behaviour state is
/// written, not only the log.
fn ingest_once(items: &[Item], evs: &[Event]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    for chunk in items.chunks(BATCH) {
        store.upsert_items(chunk).expect("items");
    }
    store.flush().expect("flush");
    let started = Instant::now();
    for chunk in evs.chunks(BATCH) {
        store.record_events(chunk).expect("record");
    }
    // Closing waits for a running checkpoint, checkpoints the rest and flushes: the clock
    // stops once every event and all the state it changed are durable.
    drop(store);
    evs.len() as f64 / started.elapsed().as_secs_f64()
}

/// Inserts/s of the baseline: raw sled, one key per event, 21-byte keys (as a one-key-per-event
/// log would use) and the event's bincode encoding as the value, same batches, one flush.
fn raw_sled_once(values: &[Vec<u8>]) -> f64 {
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(raw_dir.path()).expect("sled");
    let started = Instant::now();
    for (b, chunk) in values.chunks(BATCH).enumerate() {
        let mut batch = sled::Batch::default();
        for (i, v) in chunk.iter().enumerate() {
            let mut k = [0u8; 21];
            k[0] = b'E';
            k[13..].copy_from_slice(&((b * BATCH + i) as u64).to_be_bytes());
            batch.insert(&k[..], v.as_slice());
        }
        db.apply_batch(batch).expect("batch");
    }
    db.flush().expect("flush");
    values.len() as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const INGEST_ROUNDS: usize = 5;

/// The ingestion data, the same in every process (fixed seeds).
fn ingestion_data() -> (Vec<Item>, Vec<Event>) {
    let items = recostore::demo::zipf_items(10_000, 5_000, 8..=12, 3);
    let evs = events(200_000, 20_000, &items, 5);
    (items, evs)
}

/// Child side of [`ingestion`]: run one side once and print its rate.
fn ingestion_child(side: &str) {
    let (items, evs) = ingestion_data();
    let rate = if side == "raw" {
        let values: Vec<Vec<u8>> = evs
            .iter()
            .map(|e| {
                bincode::serde::encode_to_vec(e, bincode::config::standard()).unwrap_or_default()
            })
            .collect();
        raw_sled_once(&values)
    } else {
        ingest_once(&items, &evs)
    };
    println!("{rate}");
}

/// Each run is a fresh process: sled's garbage is collected through a process-wide epoch, so
/// in one process a run would pay for freeing the previous run's database.
fn run_child(side: &str) -> f64 {
    let exe = std::env::current_exe().expect("bench binary path");
    let out = std::process::Command::new(exe)
        .args(["--ingestion-child", side])
        .output()
        .expect("run the ingestion child");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

fn ingestion() {
    println!(
        "### Event ingestion (200,000 events, batches of {BATCH}, group commit; median of {INGEST_ROUNDS} rounds)\n"
    );
    // Rounds alternate, so drift in the machine's load hits both sides alike.
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=INGEST_ROUNDS {
        ours.push(run_child("recostore"));
        raw.push(run_child("raw"));
        eprintln!(
            "round {round}: recostore {:.0}/s, raw sled {:.0}/s",
            ours[round - 1],
            raw[round - 1]
        );
    }
    let (ours, raw) = (median(ours), median(raw));
    println!("| measure | recostore | raw sled inserts | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| events/s | {ours:.0} | {raw:.0} | {:.2}× | ≥ 100,000/s |\n",
        ours / raw
    );
}

fn scenarios(n: usize) {
    println!("### Scenarios: {n} items, 500,000 events from up to 50,000 users, {QUERIES} queries each\n");
    let items = recostore::demo::zipf_items(n, 100_000, 24..=32, 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open_with(dir.path(), Config::default().rebuild_threshold(None)).expect("open");
    for chunk in items.chunks(BATCH) {
        store.upsert_items(chunk).expect("items");
    }
    // Events touch the 200k most popular items, as a shop's traffic would.
    let hot_items = &items[..items.len().min(200_000)];
    let evs = events(500_000, 50_000, hot_items, 11);
    let mut users: Vec<String> = evs.iter().map(|e| e.user.clone()).collect();
    users.sort();
    users.dedup();
    for chunk in evs.chunks(BATCH) {
        store.record_events(chunk).expect("events");
    }
    store.rebuild().expect("rebuild");
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let hot: Vec<String> = hot_items.iter().map(|i| i.id.clone()).collect();
    let user = |rng: &mut ChaCha8Rng| users[rng.gen_range(0..users.len())].clone();
    let item = |rng: &mut ChaCha8Rng| hot[skewed(rng, hot.len())].clone();
    let make = |name: &str, r: &mut ChaCha8Rng| match name {
        "similar" => Ask::new(Scenario::Similar { item: item(r) }),
        "together" => Ask::new(Scenario::Together { item: item(r) }),
        "substitutes" => Ask::new(Scenario::Substitutes { item: item(r) }),
        "complements" => Ask::new(Scenario::Complements { item: item(r) }),
        "viewed" => Ask::new(Scenario::Viewed { item: item(r) }),
        "for-user" => Ask::new(Scenario::ForUser).user(user(r)).exclude_seen(),
        "cart" => Ask::new(Scenario::Cart {
            items: (0..3).map(|_| item(r)).collect(),
        }),
        "cart for a known shopper" => Ask::new(Scenario::Cart {
            items: (0..3).map(|_| item(r)).collect(),
        })
        .user(user(r))
        .exclude_seen(),
        "after-purchase" => Ask::new(Scenario::AfterPurchase).user(user(r)),
        "search-rerank" => Ask::new(Scenario::SearchRerank {
            items: (0..50).map(|_| item(r)).collect(),
            keywords: vec!["17".into(), "cat".into()],
        })
        .user(user(r)),
        "trending" => Ask::new(Scenario::Trending),
        _ => Ask::new(Scenario::Trending)
            .filter(recostore::Filter::new().category(format!("cat/{}", r.gen_range(0..200)))),
    };
    let cases = [
        "similar",
        "together",
        "substitutes",
        "complements",
        "viewed",
        "for-user",
        "cart",
        "cart for a known shopper",
        "after-purchase",
        "search-rerank",
        "trending",
        "trending in a category",
    ];
    // Baseline: brute-force profile scan over every item.
    let mut base: Vec<Duration> = (0..20)
        .map(|_| {
            let q = Query::profile(
                (0..20).map(|_| (format!("tag:{}", skewed(&mut rng, 100_000)), 1.0)),
            )
            .method(Method::Exhaustive);
            let s = Instant::now();
            std::hint::black_box(store.query(&q).expect("baseline"));
            s.elapsed()
        })
        .collect();
    base.sort();
    let base50 = pct(&base, 0.5);
    println!("| scenario | p50 ms | p99 ms | brute-force scan p50 ms | ratio | target p50 |");
    println!("|---|---|---|---|---|---|");
    for name in cases {
        let mut t: Vec<Duration> = (0..QUERIES)
            .map(|_| {
                let ask = make(name, &mut rng);
                let s = Instant::now();
                std::hint::black_box(store.recommend(&ask).expect(name));
                s.elapsed()
            })
            .collect();
        t.sort();
        let p50 = pct(&t, 0.5);
        println!(
            "| {name} | {p50:.3} | {:.3} | {base50:.1} | {:.0}× faster | ≤ 5 ms |",
            pct(&t, 0.99),
            base50 / p50
        );
    }
    let mut t: Vec<Duration> = (0..QUERIES)
        .map(|_| {
            let u = user(&mut rng);
            let s = Instant::now();
            std::hint::black_box(store.users_like(&u, 10).expect("users-like"));
            s.elapsed()
        })
        .collect();
    t.sort();
    println!(
        "| users-like | {:.3} | {:.3} | {base50:.1} | {:.0}× faster | ≤ 5 ms |\n",
        pct(&t, 0.5),
        pct(&t, 0.99),
        base50 / pct(&t, 0.5)
    );
}

/// for-user on 8 threads at once, straight after each of 20 write bursts.
fn burst(n: usize) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    const PER_THREAD: usize = 10;
    println!("### for-user after a write burst: {n} items, 500,000 events, {THREADS} threads\n");
    let items = recostore::demo::zipf_items(n, 100_000, 24..=32, 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open_with(dir.path(), Config::default().rebuild_threshold(None)).expect("open");
    for chunk in items.chunks(BATCH) {
        store.upsert_items(chunk).expect("items");
    }
    let hot_items = &items[..items.len().min(200_000)];
    let evs = events(500_000 + ROUNDS * 2_000, 50_000, hot_items, 11);
    let (start, bursts) = evs.split_at(500_000);
    for chunk in start.chunks(BATCH) {
        store.record_events(chunk).expect("events");
    }
    store.rebuild().expect("rebuild");
    let mut users: Vec<String> = start.iter().map(|e| e.user.clone()).collect();
    users.sort();
    users.dedup();
    let warm = Ask::new(Scenario::ForUser)
        .user(users[0].clone())
        .exclude_seen();
    store.recommend(&warm).expect("warm-up");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut all: Vec<Duration> = Vec::new();
    let mut firsts: Vec<Duration> = Vec::new();
    for (round, burst) in bursts.chunks(2_000).enumerate() {
        store.record_events(burst).expect("burst");
        // A "forget me" request: the liked-by-the-same-people relation must drop that user now.
        store
            .delete_user(&users[users.len() - 1 - round])
            .expect("delete user");
        let asks: Vec<Vec<Ask>> = (0..THREADS)
            .map(|_| {
                (0..PER_THREAD)
                    .map(|_| {
                        let u = users[rng.gen_range(0..users.len() - ROUNDS)].clone();
                        Ask::new(Scenario::ForUser).user(u).exclude_seen()
                    })
                    .collect()
            })
            .collect();
        let gate = std::sync::Barrier::new(THREADS);
        let times: Vec<Vec<Duration>> = std::thread::scope(|s| {
            let handles: Vec<_> = asks
                .iter()
                .map(|mine| {
                    let (store, gate) = (&store, &gate);
                    s.spawn(move || {
                        gate.wait();
                        mine.iter()
                            .map(|ask| {
                                let t = Instant::now();
                                std::hint::black_box(store.recommend(ask).expect("for-user"));
                                t.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("query thread"))
                .collect()
        });
        for t in times {
            firsts.push(t[0]);
            all.extend(t);
        }
    }
    all.sort();
    firsts.sort();
    println!("| queries | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| all {} | {:.3} | {:.3} | {:.3} |",
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    println!(
        "| first per thread after a burst ({}) | {:.3} | {:.3} | {:.3} |\n",
        firsts.len(),
        pct(&firsts, 0.5),
        pct(&firsts, 0.99),
        firsts.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("scenarios: bench");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--ingestion-child") {
        ingestion_child(args.get(at + 1).map_or("recostore", String::as_str));
        return;
    }
    // `cargo bench --bench scenarios -- ingestion` (or `-- scenarios`) runs one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|a| a == part);
    if wanted("ingestion") {
        ingestion();
    }
    if wanted("scenarios") {
        let n = std::env::var("RECOSTORE_BENCH_ITEMS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        scenarios(n);
    }
    if only.iter().any(|a| a == "burst") {
        let n = std::env::var("RECOSTORE_BENCH_ITEMS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200_000);
        burst(n);
    }
}
