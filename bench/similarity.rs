//! Top-k similarity: latency, throughput and build time, each beside baselines from the same run.
//!
//! Run: `cargo bench --bench similarity`. Data: 1,000,000 generated items with 24–32 tags from a
//! 100,000-tag Zipf vocabulary (`RECOSTORE_BENCH_ITEMS` changes the count), then 100,000 items,
//! then the real MovieLens and Online Retail stores from `../shared/data` (skipped if absent).
//! Neighbour lists are built up to 1M items (`RECOSTORE_BENCH_NEIGHBOURS_MAX` changes that).
//!
//! Baselines in the same run, on the same data:
//! * brute force: [`Method::Exhaustive`], every item scored from the forward index;
//! * `sparse_dot_topn` (PyPI), one query row against the item matrix, top-10, one thread, via
//!   `bench/peers/sparse_dot_topn_peer.py` (interpreter: `RECOSTORE_PEER_PYTHON`, default
//!   `bench/peers/.venv/bin/python`; skipped with a note if it cannot run).
//!
//! Figures are medians/percentiles over many queries; results go to `bench/RESULTS.md` by hand.

#[path = "support/peer.rs"]
mod peer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::import::{self, ImportOptions};
use recostore::{Config, Item, Method, Query, Store};

const VOCAB: usize = 100_000;
const K: usize = 10;
/// Queries per latency measurement (brute force gets fewer: it is slow).
const QUERIES: usize = 400;
const BRUTE_QUERIES: usize = 40;
const PROFILE_TAGS: usize = 20;
/// Above this many items the bench does not build neighbour lists (one exact search per item;
/// at 1M about 12 minutes of this 2-core machine). `RECOSTORE_BENCH_NEIGHBOURS_MAX` changes it.
const NEIGHBOUR_BUILD_MAX: usize = 1_000_000;

fn neighbour_build_max() -> usize {
    std::env::var("RECOSTORE_BENCH_NEIGHBOURS_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NEIGHBOUR_BUILD_MAX)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Latency (ms) p50 and p99 of running every query once.
fn latency(store: &Store, queries: &[Query]) -> (f64, f64) {
    let mut t: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let s = Instant::now();
            let r = store.query(q).expect("query");
            std::hint::black_box(r);
            s.elapsed()
        })
        .collect();
    t.sort();
    (pct(&t, 0.5), pct(&t, 0.99))
}

/// Queries per second with `threads` concurrent readers, each running the whole list.
fn throughput(store: &Store, queries: &[Query], threads: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                // Each reader walks the list from a different offset.
                let n = queries.len();
                for i in 0..n {
                    let q = &queries[(i + t * n / threads.max(1)) % n];
                    std::hint::black_box(store.query(q).expect("query"));
                }
            });
        }
    });
    (queries.len() * threads) as f64 / start.elapsed().as_secs_f64()
}

fn row(name: &str, ours: String, base: String, ratio: String, target: &str) {
    println!("| {name} | {ours} | {base} | {ratio} | {target} |");
}

fn profile_queries(n: usize, rng: &mut ChaCha8Rng) -> Vec<Query> {
    // Profiles draw tags like items do (Zipf), so they hit popular and rare tags alike.
    let items = recostore::demo::zipf_items(n, VOCAB, PROFILE_TAGS..=PROFILE_TAGS, rng.gen());
    items
        .into_iter()
        .map(|i| Query::profile(i.tags).k(K))
        .collect()
}

fn load(dir: &Path, items: &[Item], config: Config) -> Store {
    let store = Store::open_with(dir, config).expect("open");
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("load");
    }
    store.flush().expect("flush");
    store
}

fn generated(n: usize) {
    println!("### Generated: {n} items, 24–32 tags each, {VOCAB}-tag Zipf vocabulary\n");
    let items = recostore::demo::zipf_items(n, VOCAB, 24..=32, 7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = Config::default().rebuild_threshold(None);
    let store = load(tmp.path(), &items, base.clone().neighbours(0));
    let t = Instant::now();
    store.rebuild().expect("rebuild");
    let seg_s = t.elapsed().as_secs_f64();
    drop(store);
    let store = Store::open_with(
        tmp.path(),
        base.neighbours(4 * K)
            .neighbour_item_limit(usize::MAX)
            .progress(tenths()),
    )
    .expect("open");
    let t = Instant::now();
    if n <= neighbour_build_max() {
        store.rebuild().expect("rebuild");
    }
    let both_s = t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let picks: Vec<usize> = (0..QUERIES).map(|_| rng.gen_range(0..n)).collect();
    let similar = |m: Method| -> Vec<Query> {
        picks
            .iter()
            .map(|&i| Query::similar_to(items[i].id.clone()).k(K).method(m))
            .collect()
    };
    let (auto_q, pruned_q, brute_q) = (
        similar(Method::Auto),
        similar(Method::Pruned),
        similar(Method::Exhaustive),
    );
    let profiles = profile_queries(QUERIES, &mut rng);
    let profiles_brute: Vec<Query> = profiles
        .iter()
        .take(BRUTE_QUERIES)
        .map(|q| q.clone().method(Method::Exhaustive))
        .collect();

    // Warm the page cache and the mapping once, as a serving process would be.
    let _ = latency(&store, &pruned_q[..100]);
    let (sim_p50, sim_p99) = latency(&store, &pruned_q);
    let (nb_p50, nb_p99) = latency(&store, &auto_q);
    let (bf_p50, bf_p99) = latency(&store, &brute_q[..BRUTE_QUERIES]);
    let (pr_p50, pr_p99) = latency(&store, &profiles);
    let (pbf_p50, pbf_p99) = latency(&store, &profiles_brute);
    let qps1 = throughput(&store, &pruned_q, 1);
    let qps2 = throughput(&store, &pruned_q, 2);
    let pqps1 = throughput(&store, &profiles, 1);
    let pqps2 = throughput(&store, &profiles, 2);
    let split2: Vec<Query> = pruned_q.iter().map(|q| q.clone().threads(2)).collect();
    let (sp_p50, sp_p99) = latency(&store, &split2);

    // The peer gets the same item matrix and the same query rows.
    let snap = store.snapshot();
    let rows: Vec<Vec<(u32, f32)>> = picks
        .iter()
        .map(|&i| {
            let id = snap.item_id(&items[i].id).expect("id");
            recostore::internals::segment_data(&snap)
                .items
                .forward
                .row_vec(id)
        })
        .collect();
    let peer_dir = PathBuf::from("target/bench-data/peer-similar");
    let peer = peer::dump(&store, &rows, &peer_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            peer::run(
                "sparse_dot_topn_peer.py",
                &peer_dir,
                K,
                &["--entry", "unchecked"],
            )
        })
        .map(|p| (p.p50_ms, p.p99_ms, p.qps));

    println!("| measure | recostore | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    let r = |a: f64, b: f64| format!("{:.1}×", b / a);
    row(
        "top-10 similar items, pruned engine, p50 / p99",
        format!("{sim_p50:.3} / {sim_p99:.3} ms"),
        format!("brute force {bf_p50:.2} / {bf_p99:.2} ms"),
        r(sim_p50, bf_p50),
        "p50 ≤ 2 ms, p99 ≤ 10 ms",
    );
    match &peer {
        Ok((p50, p99, _)) => row(
            "top-10 similar items vs sparse_dot_topn (1 thread)",
            format!("{sim_p50:.3} / {sim_p99:.3} ms"),
            format!("sparse_dot_topn {p50:.2} / {p99:.2} ms"),
            r(sim_p50, *p50),
            "≥ 10×",
        ),
        Err(e) => println!(
            "| sparse_dot_topn | not run: {} | | | |",
            e.lines().next().unwrap_or("")
        ),
    }
    let auto_name = if n <= neighbour_build_max() {
        "top-10 similar items, neighbour list (auto), p50 / p99"
    } else {
        "top-10 similar items, `Method::Auto` (no neighbour lists at this size, so the pruned engine)"
    };
    row(
        auto_name,
        format!("{:.1} / {:.1} µs", nb_p50 * 1e3, nb_p99 * 1e3),
        format!("pruned {sim_p50:.3} / {sim_p99:.3} ms"),
        r(nb_p50, sim_p50),
        "≤ 50 µs",
    );
    row(
        "20-tag profile, p50 / p99",
        format!("{pr_p50:.3} / {pr_p99:.3} ms"),
        format!("brute force {pbf_p50:.2} / {pbf_p99:.2} ms"),
        r(pr_p50, pbf_p50),
        "—",
    );
    row(
        "similar items queries/s, 1 thread / 2 threads",
        format!("{qps1:.0} / {qps2:.0}"),
        format!("brute force {:.0} / —", 1e3 / bf_p50),
        format!("{:.2}× from 2nd thread", qps2 / qps1),
        "—",
    );
    row(
        "profile queries/s, 1 thread / 2 threads",
        format!("{pqps1:.0} / {pqps2:.0}"),
        format!("brute force {:.0} / —", 1e3 / pbf_p50),
        format!("{:.2}× from 2nd thread", pqps2 / pqps1),
        "—",
    );
    row(
        "one similar query split over 2 threads, p50 / p99",
        format!("{sp_p50:.3} / {sp_p99:.3} ms"),
        format!("1 thread {sim_p50:.3} / {sim_p99:.3} ms"),
        r(sp_p50, sim_p50),
        "—",
    );
    row(
        "segment build (fold the whole load as one delta)",
        format!("{seg_s:.1} s"),
        "—".into(),
        "—".into(),
        "—",
    );
    if n <= neighbour_build_max() {
        row(
            &format!("neighbour lists ({} per item, {threads} threads)", 4 * K),
            format!(
                "{:.1} s ({:.2} ms/item/thread)",
                both_s,
                both_s * 1e3 * threads as f64 / n as f64
            ),
            format!("segment alone {seg_s:.1} s"),
            "—".into(),
            "—",
        );
    } else {
        println!("| neighbour lists | not built at this size (see the 100k run) | | | |");
    }
    println!();
}

fn real(name: &str, dir: &Path, fill: impl Fn(&Store)) {
    let store = Store::open_with(dir, Config::default().rebuild_threshold(None)).expect("open");
    fill(&store);
    store.rebuild().expect("rebuild");
    let snap = store.snapshot();
    let n = snap.item_id_bound();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let names: Vec<String> = (0..QUERIES)
        .filter_map(|_| snap.item_name(rng.gen_range(0..n)))
        .collect();
    let q = |m: Method| -> Vec<Query> {
        names
            .iter()
            .map(|id| Query::similar_to(id.clone()).k(K).method(m))
            .collect()
    };
    let (p50, p99) = latency(&store, &q(Method::Pruned));
    let (a50, a99) = latency(&store, &q(Method::Auto));
    let (b50, b99) = latency(&store, &q(Method::Exhaustive));
    println!(
        "| {name} ({} items): top-10 similar, pruned / neighbour list / brute force, p50 (p99) | {p50:.3} ({p99:.3}) ms / {:.1} ({:.1}) µs | brute force {b50:.3} ({b99:.3}) ms | {:.1}× / {:.0}× | — |",
        snap.live_items(),
        a50 * 1e3,
        a99 * 1e3,
        b50 / p50,
        b50 / a50
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("similarity: bench");
        return;
    }
    let n = std::env::var("RECOSTORE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    generated(n);
    if n > 100_000 {
        generated(100_000);
    }

    let data = Path::new("../shared/data");
    if !data.exists() {
        println!("(../shared/data not found: real data sets skipped)");
        return;
    }
    println!("### Real data sets\n");
    println!("| data set | recostore | baseline (same run) | ratio | target |");
    println!("|---|---|---|---|---|");
    let opts = ImportOptions::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    real("MovieLens small", &tmp.path().join("ml"), |s| {
        import::movielens::import(s, &data.join("movielens-small"), &opts).expect("import");
    });
    real("Online Retail", &tmp.path().join("retail"), |s| {
        import::retail::import(s, &data.join("online-retail/online-retail.csv.gz"), &opts)
            .expect("import");
    });
}

/// Progress of the long neighbour-list build on stderr, a line per tenth.
fn tenths() -> recostore::Progress {
    let last = std::sync::atomic::AtomicU64::new(0);
    recostore::Progress::new(move |u| {
        let tenth = (u.done * 10).checked_div(u.total).unwrap_or(0);
        if tenth > last.swap(tenth, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("{}: {}/{}", u.stage, u.done, u.total);
        }
    })
}
