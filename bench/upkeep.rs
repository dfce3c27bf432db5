//! The delta's upkeep: saving the delta to its file against folding it into a new segment, and
//! opening from the saved delta against reading it back from sled's dirty log, in the same
//! run, at 1M items.
//!
//! Run: `cargo bench --bench upkeep`. Data: 1,000,000 generated items with 24–32 tags from a
//! 100,000-tag Zipf vocabulary (`RECOSTORE_BENCH_ITEMS` changes the count), bulk-loaded, no
//! neighbour lists, the delta's background index at its default (256 rows).
//!
//! Each state is reached from the folded store by `upsert_items` calls of 10,000: stock and
//! price for 100,000 items, or one tag's weight for 10,000, 100,000 and 250,000 items
//! (`Config::fold_fraction`'s default is a quarter of the catalogue). Then, in order:
//!
//! 1. the background index settles and sled flushes; `Store::save_delta` is timed;
//! 2. the store closes and opens again (timed), reading the delta file; 50 similar-items
//!    queries run at once (p50), and the time until fewer than 256 rows wait for the index;
//! 3. the same with the delta file moved aside: the delta comes from the dirty log. Steps 2
//!    and 3 alternate three times each; the table holds medians;
//! 4. `Store::rebuild` folds the delta (timed): the work a save replaces.
//!
//! Figures go to `bench/RESULTS.md` by hand.

#[path = "support/updates.rs"]
mod updates;

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::{Config, Query, Store};

const VOCAB: usize = 100_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wait until fewer than 256 rows wait for the delta's index; returns how long that took.
fn indexed(store: &Store) -> Duration {
    let t = Instant::now();
    while store.stats().delta_unindexed >= 256 && t.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

/// An open of the store in `dir`: how long `open` took, the p50 of `queries` run right
/// after it (ms), how long after the open the index had caught up, and the runs it opened
/// with.
struct Open {
    open_ms: f64,
    first_p50_ms: f64,
    indexed_s: f64,
    runs: usize,
}

fn open(dir: &Path, config: &Config, queries: &[Query]) -> (Store, Open) {
    let t = Instant::now();
    let store = Store::open_with(dir, config.clone()).expect("open");
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let runs = store.stats().delta_runs;
    let times = queries
        .iter()
        .map(|q| {
            let s = Instant::now();
            std::hint::black_box(store.query(q).expect("query"));
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let first_p50_ms = median(times);
    indexed(&store);
    let indexed_s = t.elapsed().as_secs_f64();
    (
        store,
        Open {
            open_ms,
            first_p50_ms,
            indexed_s,
            runs,
        },
    )
}

fn main() {
    let n = env("RECOSTORE_BENCH_ITEMS", 1_000_000);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("### Upkeep: {n} generated items, 24–32 tags each, {VOCAB}-tag Zipf vocabulary (commit {commit})\n");
    let mut items = recostore::demo::zipf_items(n, VOCAB, 24..=32, 7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let aside = tmp.path().join("aside.dlt");
    let config = Config::default().rebuild_threshold(None).neighbours(0);
    let mut store = Store::open_with(&dir, config.clone()).expect("open");
    store.bulk_load_items(&items).expect("bulk load");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let queries: Vec<Query> = (0..50)
        .map(|_| Query::similar_to(items[rng.gen_range(0..n)].id.clone()).k(10))
        .collect();

    let states: [(&str, usize, bool); 4] = [
        ("100k stock/price updates", 100_000, false),
        ("10k tag changes", 10_000, true),
        ("100k tag changes", 100_000, true),
        ("250k tag changes", 250_000, true),
    ];
    println!("Command: `cargo bench --bench upkeep`. Each state from the folded store; save and fold are of the same delta, in the same run. Opens: `Store::open_with`, then 50 similar-items queries at once (p50), then the wait until fewer than 256 rows are left for the index (from the open).\n");
    println!("| delta holds | records (runs) | save | delta file | fold (same delta) | open from the delta file: open, first p50, indexed | from the dirty log: open, first p50, indexed |");
    println!("|---|---|---|---|---|---|---|");
    for (name, count, retag) in states {
        updates::update(&[&store], &mut items, 0, count.min(n), retag, &mut rng);
        indexed(&store);
        store.flush().expect("flush");
        let saved = store.save_delta().expect("save");
        let generation = saved.generation;
        store.close().expect("close");

        // Three opens each way, alternating, medians: the first open after a heavy write
        // also pays for sled's own recovery of the writes, whichever way the delta comes.
        let file = dir.join("segments").join(format!("{generation:020}.dlt"));
        let (mut from_file, mut from_log) = (Vec::new(), Vec::new());
        let mut last = None;
        for round in 0..3 {
            let (s, o) = open(&dir, &config, &queries);
            if round == 0 {
                assert_eq!(o.runs, saved.runs, "the saved runs came back");
            }
            from_file.push(o);
            s.close().expect("close");
            std::fs::rename(&file, &aside).expect("move the delta file aside");
            let (s, o) = open(&dir, &config, &queries);
            from_log.push(o);
            if round < 2 {
                // Closing saves the delta again (it came from the dirty log): the same
                // records, so the next round reads an equal file.
                s.close().expect("close");
                std::fs::remove_file(&aside).expect("remove");
            } else {
                std::fs::remove_file(&aside).expect("remove");
                last = Some(s);
            }
        }
        let s = last.expect("the last open");
        let t = Instant::now();
        s.rebuild().expect("fold");
        let fold = t.elapsed().as_secs_f64();
        store = s;
        let med = |v: &[Open], f: fn(&Open) -> f64| median(v.iter().map(f).collect());
        let (from_file, from_log) = (
            [
                med(&from_file, |o| o.open_ms),
                med(&from_file, |o| o.first_p50_ms),
                med(&from_file, |o| o.indexed_s),
            ],
            [
                med(&from_log, |o| o.open_ms),
                med(&from_log, |o| o.first_p50_ms),
                med(&from_log, |o| o.indexed_s),
            ],
        );
        eprintln!("{name}: save {:.3} s, fold {fold:.2} s", saved.seconds);
        println!(
            "| {name} | {} ({}) | {:.3} s | {:.1} MB | {fold:.2} s | {:.0} ms, {:.2} ms, {:.2} s | {:.0} ms, {:.2} ms, {:.2} s |",
            saved.records,
            saved.runs,
            saved.seconds,
            saved.bytes as f64 / 1e6,
            from_file[0],
            from_file[1],
            from_file[2],
            from_log[0],
            from_log[1],
            from_log[2],
        );
    }
    println!();
}
