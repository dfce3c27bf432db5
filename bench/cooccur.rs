//! Co-occurrence at scale: the memory the basket indexes take, and how fast `together`,
//! `substitutes` and `complements` answer, in a store straight after recording its events.
//!
//! Run: `cargo bench --bench cooccur` (1,000,000 items, 5,000,000 events of the shared
//! generated traffic, `bench/traffic.rs`; `RECOSTORE_BENCH_ITEMS` and `RECOSTORE_BENCH_EVENTS`
//! change the sizes). Each side runs in its own child process:
//!
//! * **memory**: live heap bytes (a counting allocator) after the events (recorded with no
//!   checkpoint, so sled's cache holds the same in both runs), with the default
//!   `Config::cooccurrence_lines` and with 0 (which keeps only the newest chunk of 256 baskets
//!   per index); the difference is what the indexes hold. Reported per item of the catalogue,
//!   per line, and beside the store's own estimate (`Stats::cooccurrence_bytes`).
//! * **latency**: p50/p99 of 200 queries per scenario (subjects drawn as the traffic draws
//!   items, so popular items are asked about most); baseline, in the same run: counting an
//!   item's partners by scanning every basket, as a store without an index would.
//!
//! For a profile: `RECOSTORE_BENCH_PROFILE=substitutes` (or `together`, `complements`) makes
//! the latency child print `ready` and then run that scenario's queries in a loop for
//! `RECOSTORE_BENCH_SECONDS` (60), for `perf record -p` (the child is
//! `target/release/deps/cooccur-* --child 10000000 --latency`); `RECOSTORE_BENCH_RANKS=300..3000`
//! keeps the subjects of those popularity ranks only.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recostore::{Ask, Scenario};
use recostore::{Config, EventKind, Store};

mod traffic;

/// The allocator the `recostore` binary uses (mimalloc with the default features, else the
/// system's), counting live bytes.
struct Counting;

#[cfg(feature = "mimalloc")]
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
static INNER: std::alloc::System = std::alloc::System;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `INNER`, which upholds `GlobalAlloc`'s
// contract; the counter is only bookkeeping beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`: arguments passed on unchanged.
        unsafe { INNER.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const QUERIES: usize = 200;
const BATCH: usize = 10_000;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// One side, in this (child) process: prints `key value` lines for the parent.
fn child(lines: u64, latency: bool) {
    let (n, count) = (
        size("RECOSTORE_BENCH_ITEMS", 1_000_000),
        size("RECOSTORE_BENCH_EVENTS", 5_000_000),
    );
    let items = recostore::demo::zipf_items(n, 10_000, 4..=6, 7);
    let evs = traffic::events(count, n / 20, &items, 11);
    let dir = tempfile::tempdir().expect("tempdir");
    // No checkpoint while the events go in: sled's cache would hold the written chunks, and
    // the heap difference would count them.
    let cfg = Config::default()
        .rebuild_threshold(None)
        .checkpoint_events(usize::MAX)
        .cooccurrence_lines(lines);
    let store = Store::open_with(dir.path(), cfg).expect("open");
    for chunk in items.chunks(BATCH) {
        store.upsert_items(chunk).expect("items");
    }
    store.rebuild().expect("rebuild");
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    for chunk in evs.chunks(BATCH) {
        store.record_events(chunk).expect("events");
    }
    let secs = started.elapsed().as_secs_f64();
    let after = LIVE.load(Ordering::Relaxed);
    let s = store.stats();
    println!("heap_events {}", after.saturating_sub(before));
    println!("lines {}", s.bought_lines + s.viewed_lines);
    println!("estimate {}", s.cooccurrence_bytes);
    println!("events_per_sec {:.0}", count as f64 / secs);
    if !latency {
        return;
    }
    // Subjects drawn the way the traffic draws items: popular items are asked about most.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let subjects: Vec<String> = (0..QUERIES)
        .map(|_| items[traffic::skewed(&mut rng, items.len())].id.clone())
        .collect();
    if let Ok(which) = std::env::var("RECOSTORE_BENCH_PROFILE") {
        // For `perf record -p PID`: one scenario's queries in a loop, after `ready` is printed.
        let secs = size("RECOSTORE_BENCH_SECONDS", 60) as u64;
        // `RECOSTORE_BENCH_RANKS=lo..hi`: only subjects of those popularity ranks (the p50
        // subject is about rank 1,000), to profile the typical query rather than the heaviest.
        let ranks = std::env::var("RECOSTORE_BENCH_RANKS").ok();
        let (lo, hi) = ranks
            .as_deref()
            .and_then(|r| r.split_once(".."))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .unwrap_or((0, usize::MAX));
        let picked: Vec<&String> = subjects
            .iter()
            .filter(|s| {
                let rank = items.iter().position(|i| &i.id == *s).unwrap_or(0);
                (lo..hi).contains(&rank)
            })
            .collect();
        println!("ready ({} subjects)", picked.len());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            for &i in &picked {
                let scenario = match which.as_str() {
                    "together" => Scenario::Together { item: i.clone() },
                    "complements" => Scenario::Complements { item: i.clone() },
                    _ => Scenario::Substitutes { item: i.clone() },
                };
                std::hint::black_box(store.recommend(&Ask::new(scenario)).expect("query"));
            }
        }
        return;
    }
    for (name, make) in [
        (
            "together",
            (|i: String| Scenario::Together { item: i }) as fn(String) -> Scenario,
        ),
        ("substitutes", |i| Scenario::Substitutes { item: i }),
        ("complements", |i| Scenario::Complements { item: i }),
    ] {
        let mut t: Vec<Duration> = subjects
            .iter()
            .map(|i| {
                let ask = Ask::new(make(i.clone()));
                let s = Instant::now();
                std::hint::black_box(store.recommend(&ask).expect(name));
                s.elapsed()
            })
            .collect();
        t.sort();
        println!("{name} {:.3} {:.3}", pct(&t, 0.5), pct(&t, 0.99));
    }
    // Baseline: the baskets as plain vectors, an item's partners counted by scanning them all.
    let mut baskets: Vec<Vec<&str>> = Vec::new();
    let mut open: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for e in &evs {
        if let (EventKind::Purchase { .. }, Some(item), Some(s)) = (&e.kind, &e.item, &e.session) {
            let at = *open
                .entry((e.user.as_str(), s.as_str()))
                .or_insert_with(|| {
                    baskets.push(Vec::new());
                    baskets.len() - 1
                });
            if !baskets[at].contains(&item.as_str()) {
                baskets[at].push(item);
            }
        }
    }
    let mut t: Vec<Duration> = subjects
        .iter()
        .take(20)
        .map(|a| {
            let s = Instant::now();
            let mut counts: std::collections::HashMap<&str, u32> = Default::default();
            for b in baskets.iter().filter(|b| b.contains(&a.as_str())) {
                for &j in b {
                    *counts.entry(j).or_default() += 1;
                }
            }
            std::hint::black_box(counts);
            s.elapsed()
        })
        .collect();
    t.sort();
    println!("scan {:.3} {:.3}", pct(&t, 0.5), pct(&t, 0.99));
}

fn run_child(lines: u64, latency: bool) -> std::collections::HashMap<String, Vec<f64>> {
    let exe = std::env::current_exe().expect("bench binary path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--child", &lines.to_string()]);
    if latency {
        cmd.arg("--latency");
    }
    let out = cmd.output().expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let k = w.next()?.to_string();
            Some((k, w.filter_map(|v| v.parse().ok()).collect()))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("cooccur: bench");
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let lines = args.get(at + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
        child(lines, args.iter().any(|a| a == "--latency"));
        return;
    }
    let n = size("RECOSTORE_BENCH_ITEMS", 1_000_000);
    let count = size("RECOSTORE_BENCH_EVENTS", 5_000_000);
    let full = run_child(Config::default().cooccurrence_lines, true);
    let none = run_child(0, false);
    let v = |m: &std::collections::HashMap<String, Vec<f64>>, k: &str, i: usize| {
        m.get(k).and_then(|x| x.get(i)).copied().unwrap_or(f64::NAN)
    };
    let index = v(&full, "heap_events", 0) - v(&none, "heap_events", 0);
    let lines = v(&full, "lines", 0);
    println!("### Co-occurrence: {n} items, {count} events\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| lines held (bought + viewed) | {lines:.0} |");
    println!(
        "| heap of the behaviour state after the events, default bound | {:.1} MiB |",
        v(&full, "heap_events", 0) / 1048576.0
    );
    println!(
        "| the same with `cooccurrence_lines` 0 (newest chunk only) | {:.1} MiB |",
        v(&none, "heap_events", 0) / 1048576.0
    );
    println!(
        "| the indexes (difference) | {:.1} MiB |",
        index / 1048576.0
    );
    println!(
        "| per item of the catalogue | {:.1} bytes |",
        index / n as f64
    );
    println!("| per line | {:.1} bytes |", index / lines.max(1.0));
    println!(
        "| the store's estimate (`Stats::cooccurrence_bytes`) | {:.1} MiB |",
        v(&full, "estimate", 0) / 1048576.0
    );
    println!(
        "| ingestion, events/s (default bound; 0) | {:.0}; {:.0} |\n",
        v(&full, "events_per_sec", 0),
        v(&none, "events_per_sec", 0)
    );
    println!("| scenario | p50 ms | p99 ms | baseline: scan every basket, p50 ms | target p50 |");
    println!("|---|---|---|---|---|");
    for name in ["together", "substitutes", "complements"] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.1} | < 1 ms |",
            v(&full, name, 0),
            v(&full, name, 1),
            v(&full, "scan", 0)
        );
    }
}
