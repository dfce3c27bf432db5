//! Freshness: query latency in the states a shop's store is really in, beside the folded store
//! in the same run.
//!
//! Run: `cargo bench --bench freshness`. Data: 1,000,000 generated items with 24–32 tags from a
//! 100,000-tag Zipf vocabulary (`RECOSTORE_BENCH_ITEMS` changes the count), no neighbour lists
//! (a store this size skips them by default), one query thread.
//!
//! 1. Two stores load the same catalogue and fold it: the live store and its mirror. Queried
//!    interleaved, their difference is the noise floor.
//! 2. States, each reached from the folded store: stock and price updates to 100,000 items
//!    (attribute-only writes), and tag changes to 10,000, 100,000, 250,000 and 500,000 items
//!    (re-tagged records, searched in the delta's index). The mirror takes the same writes
//!    and folds them (timed): the baseline is the same catalogue folded, queried interleaved
//!    with the live store query by query.
//! 3. A write load: the same similar-items queries for `RECOSTORE_BENCH_SECONDS` (default 60)
//!    with no writes, then as long again while another thread writes 1,000 item updates/s
//!    (80% stock and price, 20% one tag's weight), through `recostore::sizing` (what
//!    `recostore bench --writes 1000` runs).
//!
//! Similar-items and profile queries are the same in every state. Figures go to
//! `bench/RESULTS.md` by hand. `RECOSTORE_BENCH_PROFILE=1` instead leaves 100k tag changes in
//! the delta and runs similar-items queries for `RECOSTORE_BENCH_SECONDS`, for `perf record -p`.

#[path = "support/updates.rs"]
mod updates;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::{Config, Query, Store};

const VOCAB: usize = 100_000;
const K: usize = 10;
const PROFILE_TAGS: usize = 20;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// p50 and p99 (ms) of running every query once.
fn latency(store: &Store, queries: &[Query]) -> (f64, f64) {
    let mut t: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let s = Instant::now();
            std::hint::black_box(store.query(q).expect("query"));
            s.elapsed()
        })
        .collect();
    t.sort();
    (pct(&t, 0.5), pct(&t, 0.99))
}

/// Wait until `store` is in the state it is in a moment after its writes: the delta's
/// background index flushes settled, and sled's own flush of the writes done (not competing
/// for the two cores; the write-load table measures that on purpose).
fn settle(store: &Store) {
    let t = Instant::now();
    while store.stats().delta_unindexed >= 256 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    store.flush().expect("flush");
}

/// p50 and p99 (ms) of every query on `a` and on `b`, interleaved query by query (the order
/// alternating), so the machine's noise falls on both alike.
fn paired(a: &Store, b: &Store, queries: &[Query]) -> ((f64, f64), (f64, f64)) {
    let time = |s: &Store, q: &Query| {
        let t = Instant::now();
        std::hint::black_box(s.query(q).expect("query"));
        t.elapsed()
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for (i, q) in queries.iter().enumerate() {
        if i % 2 == 0 {
            ta.push(time(a, q));
            tb.push(time(b, q));
        } else {
            tb.push(time(b, q));
            ta.push(time(a, q));
        }
    }
    ta.sort();
    tb.sort();
    (
        (pct(&ta, 0.5), pct(&ta, 0.99)),
        (pct(&tb, 0.5), pct(&tb, 0.99)),
    )
}

/// One state of the live store beside the mirror (the same catalogue, folded).
struct Pair {
    state: String,
    delta: usize,
    overlay: usize,
    runs: usize,
    unindexed: usize,
    similar: ((f64, f64), (f64, f64)),
    profile: ((f64, f64), (f64, f64)),
    fold: f64,
}

fn measure_pair(
    state: &str,
    live: &Store,
    mirror: &Store,
    similar: &[Query],
    profile: &[Query],
    fold: f64,
) -> Pair {
    settle(live);
    settle(mirror);
    std::thread::sleep(Duration::from_secs(1));
    let s = live.stats();
    // One untimed pass of every query warms both: the mirror was just folded, and a segment
    // fresh from a rebuild pays page faults on its first reads, which would favour the live
    // store. The steady state of a serving process is what is compared.
    paired(live, mirror, similar);
    paired(live, mirror, profile);
    let pair = Pair {
        state: state.to_string(),
        delta: s.delta_records,
        overlay: s.attribute_overlay,
        runs: s.delta_runs,
        unindexed: s.delta_unindexed,
        similar: paired(live, mirror, similar),
        profile: paired(live, mirror, profile),
        fold,
    };
    eprintln!(
        "{state}: similar p50 {:.2}/{:.2} p99 {:.2}/{:.2}, profile p50 {:.2}/{:.2} p99 {:.2}/{:.2} ms (live/folded)",
        pair.similar.0 .0, pair.similar.1 .0, pair.similar.0 .1, pair.similar.1 .1,
        pair.profile.0 .0, pair.profile.1 .0, pair.profile.0 .1, pair.profile.1 .1,
    );
    pair
}

/// Print the latency of `store` in its current state (for the profiling mode).
fn measure(state: &str, store: &Store, similar: &[Query], profile: &[Query]) {
    settle(store);
    std::thread::sleep(Duration::from_secs(1));
    latency(store, &similar[..similar.len().min(50)]);
    let (s, p) = (latency(store, similar), latency(store, profile));
    eprintln!(
        "{state}: similar p50 {:.2} p99 {:.2}, profile p50 {:.2} p99 {:.2} ms",
        s.0, s.1, p.0, p.1
    );
}

fn main() {
    let n = env("RECOSTORE_BENCH_ITEMS", 1_000_000);
    let seconds = env("RECOSTORE_BENCH_SECONDS", 60);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("### Freshness: {n} generated items, 24–32 tags each, {VOCAB}-tag Zipf vocabulary (commit {commit})\n");
    let mut items = recostore::demo::zipf_items(n, VOCAB, 24..=32, 7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = Config::default().rebuild_threshold(None).neighbours(0);
    let store = Store::open_with(tmp.path(), config.clone()).expect("open");
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("load");
    }
    let t = Instant::now();
    store.rebuild().expect("rebuild");
    let full_rebuild = t.elapsed().as_secs_f64();

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let similar: Vec<Query> = (0..500)
        .map(|_| Query::similar_to(items[rng.gen_range(0..n)].id.clone()).k(K))
        .collect();
    // Profiles draw tags as items do (Zipf), as bench/similarity.rs's do.
    let profile: Vec<Query> =
        recostore::demo::zipf_items(500, VOCAB, PROFILE_TAGS..=PROFILE_TAGS, 13)
            .into_iter()
            .map(|i| Query::profile(i.tags).k(K))
            .collect();

    if std::env::var("RECOSTORE_BENCH_PROFILE").is_ok() {
        // For `perf record -p`: 100k tag changes indexed in runs, then similar-items queries
        // for RECOSTORE_BENCH_SECONDS.
        updates::update(&[&store], &mut items, 0, 100_000.min(n), true, &mut rng);
        measure("+100k tag changes", &store, &similar, &profile);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(seconds as u64) {
            latency(&store, &similar);
        }
        return;
    }
    // A mirror holds the same catalogue and takes the same writes, then folds them: each
    // state of the live store is measured beside the mirror, query by query interleaved, so
    // the baseline is the same catalogue folded in the same moment. Each state starts from
    // the folded store (the live store folds after it is measured).
    let mirror_dir = tempfile::tempdir().expect("tempdir");
    let mirror = Store::open_with(mirror_dir.path(), config.clone()).expect("open mirror");
    for chunk in items.chunks(10_000) {
        mirror.upsert_items(chunk).expect("load mirror");
    }
    mirror.rebuild().expect("rebuild mirror");
    let states: [(&str, usize, bool); 5] = [
        ("100k stock/price updates", 100_000, false),
        ("10k tag changes", 10_000, true),
        ("100k tag changes", 100_000, true),
        // `Config::fold_fraction`: the background upkeep folds a larger delta.
        ("250k tag changes", 250_000, true),
        ("500k tag changes", 500_000, true),
    ];
    let mut rows = vec![measure_pair(
        "nothing (both folded: the noise floor)",
        &store,
        &mirror,
        &similar,
        &profile,
        full_rebuild,
    )];
    for (name, count, retag) in states {
        updates::update(
            &[&store, &mirror],
            &mut items,
            0,
            count.min(n),
            retag,
            &mut rng,
        );
        let t = Instant::now();
        mirror.rebuild().expect("rebuild mirror");
        let fold = t.elapsed().as_secs_f64();
        rows.push(measure_pair(
            name, &store, &mirror, &similar, &profile, fold,
        ));
        store.rebuild().expect("rebuild");
    }
    drop(mirror);

    println!("Command: `cargo bench --bench freshness`. One query thread, k = {K}, {} queries of each kind per state, ms. Each state is reached from the folded store; its baseline is a second store with the same catalogue and the same writes, folded, queried interleaved with it. The last column is the time that fold took.\n", similar.len());
    println!("| delta holds | re-tagged (runs, unindexed) | attribute-only | similar p50, p99 | same catalogue folded | ratio | profile p50, p99 | same catalogue folded | ratio | rebuild |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let ((s, sf), (p, pf)) = (r.similar, r.profile);
        println!(
            "| {} | {} ({}, {}) | {} | {:.2}, {:.2} | {:.2}, {:.2} | {:.2}×, {:.2}× | {:.2}, {:.2} | {:.2}, {:.2} | {:.2}×, {:.2}× | {:.1} s |",
            r.state, r.delta, r.runs, r.unindexed, r.overlay,
            s.0, s.1, sf.0, sf.1, s.0 / sf.0, s.1 / sf.1,
            p.0, p.1, pf.0, pf.1, p.0 / pf.0, p.1 / pf.1,
            r.fold,
        );
    }
    println!();

    // The write load, through the code `recostore bench --writes` runs.
    let (quiet_p50, _) = latency(&store, &similar);
    let queries = ((seconds as f64 * 1e3 / quiet_p50.max(1e-3)) as usize).max(100);
    let r = recostore::sizing::run(
        &store,
        &recostore::sizing::SizingOptions {
            scenario: "similar".into(),
            queries,
            threads: 1,
            k: K,
            seed: 5,
            writes_per_sec: 1000,
        },
    )
    .expect("bench");
    let w = r.under_writes.expect("under writes");
    println!("Write load: {} similar-items queries on one thread with no writes ({:.0} s), then the same queries while another thread writes 1,000 item updates/s ({:.0} s: {} stock/price and {} tag-weight updates, single-record calls; {} re-indexed and {} attribute-only records in the delta at the end). µs.\n", r.queries, r.seconds, w.seconds, w.attribute_writes, w.tag_writes, w.delta_records, w.attribute_overlay);
    println!("| | p50 | p90 | p99 | max | queries/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| no writes | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        r.p50_us, r.p90_us, r.p99_us, r.max_us, r.qps
    );
    println!(
        "| 1,000 writes/s | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        w.p50_us, w.p90_us, w.p99_us, w.max_us, w.qps
    );
    println!(
        "| ratio | {:.2}× | {:.2}× | {:.2}× | | |",
        w.p50_us / r.p50_us,
        w.p90_us / r.p90_us,
        w.p99_us / r.p99_us
    );
}
