//! Freshness: query latency in the states a shop's store is really in, beside the folded store
//! in the same run.
//!
//! Run: `cargo bench --bench freshness`. Data: 1,000,000 generated items with 24–32 tags from a
//! 100,000-tag Zipf vocabulary (`RECOSTORE_BENCH_ITEMS` changes the count), no neighbour lists
//! (a store this size skips them by default), one query thread.
//!
//! 1. The folded store (every write in the segment): the baseline.
//! 2. After stock and price updates to 100,000 items (attribute-only writes).
//! 3. After tag changes to 10,000, 100,000 and 500,000 items (re-tagged records that queries
//!    scan from the delta), and the rebuild that folds them.
//! 4. A write load: the same similar-items queries for `RECOSTORE_BENCH_SECONDS` (default 60)
//!    with no writes, then as long again while another thread writes 1,000 item updates/s
//!    (80% stock and price, 20% one tag's weight), through `recostore::sizing` (what
//!    `recostore bench --writes 1000` runs).
//!
//! Similar-items and profile queries are the same in every state. Figures go to
//! `bench/RESULTS.md` by hand.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::{Config, Item, Query, Store};

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

struct Row {
    state: String,
    delta: usize,
    overlay: usize,
    runs: usize,
    unindexed: usize,
    similar: (f64, f64),
    profile: (f64, f64),
}

fn measure(state: &str, store: &Store, similar: &[Query], profile: &[Query]) -> Row {
    // The background flushes of the delta's index settle first: the state a store is in a
    // moment after its writes.
    let t = Instant::now();
    while store.stats().delta_unindexed >= 256 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // And sled's own background flush of the writes: the state a store is in a moment after
    // its writes, not while its disk work competes for the two cores (the write-load table
    // below measures that).
    store.flush().expect("flush");
    std::thread::sleep(Duration::from_secs(1));
    let s = store.stats();
    // One untimed pass warms the mapping and the delta, as a serving process would be.
    latency(store, &similar[..similar.len().min(50)]);
    let row = Row {
        state: state.to_string(),
        delta: s.delta_records,
        overlay: s.attribute_overlay,
        runs: s.delta_runs,
        unindexed: s.delta_unindexed,
        similar: latency(store, similar),
        profile: latency(store, profile),
    };
    eprintln!(
        "{state}: similar p50 {:.2} p99 {:.2}, profile p50 {:.2} p99 {:.2} ms",
        row.similar.0, row.similar.1, row.profile.0, row.profile.1
    );
    row
}

/// Write `count` updates over distinct items drawn from `items` (starting at `from`), in
/// calls of 10,000: stock and price only, or one tag's weight scaled.
fn update(
    store: &Store,
    items: &mut [Item],
    from: usize,
    count: usize,
    retag: bool,
    rng: &mut ChaCha8Rng,
) {
    let n = items.len();
    let mut batch = Vec::with_capacity(10_000);
    for j in 0..count {
        let item = &mut items[(from + j * 7919) % n];
        if retag {
            let i = rng.gen_range(0..item.tags.len());
            item.tags[i].1 = (item.tags[i].1 * rng.gen_range(0.5f32..1.5)).max(1e-3);
        } else {
            item.stock = rng.gen_range(0..100);
            item.price = (item.price * rng.gen_range(0.9f32..1.1)).max(0.0);
        }
        batch.push(item.clone());
        if batch.len() == 10_000 {
            store.upsert_items(&batch).expect("update");
            batch.clear();
        }
    }
    store.upsert_items(&batch).expect("update");
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
    let store = Store::open_with(tmp.path(), config).expect("open");
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("load");
    }
    let t = Instant::now();
    store.rebuild().expect("rebuild");
    let full_rebuild = t.elapsed().as_secs_f64();

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let similar: Vec<Query> = (0..300)
        .map(|_| Query::similar_to(items[rng.gen_range(0..n)].id.clone()).k(K))
        .collect();
    // Profiles draw tags as items do (Zipf), as bench/similarity.rs's do.
    let profile: Vec<Query> =
        recostore::demo::zipf_items(300, VOCAB, PROFILE_TAGS..=PROFILE_TAGS, 13)
            .into_iter()
            .map(|i| Query::profile(i.tags).k(K))
            .collect();

    if std::env::var("RECOSTORE_BENCH_PROFILE").is_ok() {
        // For `perf record`: 100k tag changes indexed in runs, then similar-items queries for
        // 20 s.
        update(&store, &mut items, 0, 100_000.min(n), true, &mut rng);
        measure("+100k tag changes", &store, &similar, &profile);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            latency(&store, &similar);
        }
        return;
    }
    if std::env::var("RECOSTORE_BENCH_AB").is_ok() {
        // Alternate the folded store and the same catalogue with 100k stock/price updates
        // (the tags stay, so a rebuild returns exactly the folded store's index).
        for round in 0..3 {
            measure(&format!("round {round} folded"), &store, &similar, &profile);
            update(&store, &mut items, 0, 100_000.min(n), false, &mut rng);
            measure(
                &format!("round {round} +100k stock/price"),
                &store,
                &similar,
                &profile,
            );
            store.rebuild().expect("rebuild");
        }
        return;
    }
    let mut rows = vec![measure(
        "folded (after rebuild)",
        &store,
        &similar,
        &profile,
    )];
    update(&store, &mut items, 0, 100_000.min(n), false, &mut rng);
    rows.push(measure(
        "+100k stock/price updates",
        &store,
        &similar,
        &profile,
    ));
    let mut retagged = 0;
    for target in [10_000usize, 100_000, 500_000] {
        let target = target.min(n);
        update(
            &store,
            &mut items,
            retagged,
            target - retagged,
            true,
            &mut rng,
        );
        retagged = target;
        rows.push(measure(
            &format!("+{}k tag changes", target / 1000),
            &store,
            &similar,
            &profile,
        ));
    }
    let t = Instant::now();
    let report = store.rebuild().expect("rebuild");
    let fold = t.elapsed().as_secs_f64();
    rows.push(measure("folded again", &store, &similar, &profile));

    let (bs, bp) = (rows[0].similar, rows[0].profile);
    println!("Command: `cargo bench --bench freshness`. One query thread, k = {K}, 300 queries of each kind per state; ms. Ratios are to the folded store's figure in the same run.\n");
    println!("| state | re-tagged records (runs, unindexed) | attribute-only | similar p50 | p99 | profile p50 | p99 | similar p50, p99 / folded | profile p50, p99 / folded |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} ({}, {}) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}×, {:.2}× | {:.2}×, {:.2}× |",
            r.state,
            r.delta,
            r.runs,
            r.unindexed,
            r.overlay,
            r.similar.0,
            r.similar.1,
            r.profile.0,
            r.profile.1,
            r.similar.0 / bs.0,
            r.similar.1 / bs.1,
            r.profile.0 / bp.0,
            r.profile.1 / bp.1,
        );
    }
    println!(
        "\nRebuild of the loaded store: {full_rebuild:.1} s. Rebuild folding {} records: {fold:.1} s (the whole catalogue is re-folded).\n",
        report.folded
    );

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
