//! Catalogue shapes: similar-items latency on catalogues of different shapes, each beside
//! brute force and the two peers in the same run, with the peers' answers cross-checked.
//!
//! Run: `cargo bench --bench shapes` (peers installed first, see `bench/peers/README.md`).
//! `RECOSTORE_BENCH_ITEMS` (default 1,000,000) sets every catalogue's size;
//! `RECOSTORE_BENCH_SHAPES` (comma-separated names) picks catalogues.
//! `RECOSTORE_BENCH_PROFILE=1` prints the eight slowest queries' work and the mean work per
//! query, then runs those eight in a loop for 60 s (for `perf record -p`); `=all` loops every
//! query instead, for the median's profile.
//!
//! Catalogues, all at the same size:
//! * `zipf`: the project's own generator (`demo::zipf_items`): 24–32 tags per item from a
//!   100,000-tag Zipf(1) vocabulary, weights uniform in 0.1–1.0. What the engine was tuned on.
//! * `sparse-skewed`: written here, apart from the project's generator: 6–10 tags per item
//!   from a 300,000-tag Zipf(1) vocabulary, weights heavy-tailed (`0.1·u^-1.5`, capped at
//!   1,000), so most items have one dominant tag.
//! * `movielens`, `retail`: the real items and tags of MovieLens small and UCI Online Retail
//!   (imported from `../shared/data` by the importers), replicated to the catalogue size with
//!   noise: each copy keeps each tag with probability 0.85 (at least one), scales its weight
//!   by 0.7–1.3, and with probability 0.5 gains one tag drawn from the real tag occurrences.
//!
//! Per catalogue: the store is loaded and folded (no neighbour lists: a 1M store skips them),
//! then 400 similar-items queries (one thread, k = 10) run through the default path, 40 of
//! them by brute force, and the same query rows go to `sparse_dot_topn` and BMP. Each peer's
//! top ids are compared with recostore's (the query item itself dropped: recostore excludes
//! it); a differing list is counted as a tie only when the scores at the cut are equal to
//! 1e-5 of the top score. Figures go to `bench/RESULTS.md` by hand.

#[path = "support/peer.rs"]
mod peer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::import::{self, ImportOptions};
use recostore::{Config, Item, Method, Query, Store};

const K: usize = 10;
const QUERIES: usize = 400;
const BRUTE_QUERIES: usize = 40;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Zipf(1) sampler over `vocab` ranks.
struct Zipf {
    cum: Vec<f64>,
}

impl Zipf {
    fn new(vocab: usize) -> Zipf {
        let mut acc = 0.0;
        Zipf {
            cum: (1..=vocab)
                .map(|k| {
                    acc += 1.0 / k as f64;
                    acc
                })
                .collect(),
        }
    }
    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let x = rng.gen::<f64>() * self.cum[self.cum.len() - 1];
        self.cum.partition_point(|&v| v < x).min(self.cum.len() - 1)
    }
}

fn item(id: String, tags: Vec<(String, f32)>, rng: &mut ChaCha8Rng) -> Item {
    Item {
        id,
        tags,
        category: format!("cat/{}", rng.gen_range(0..200)),
        price: rng.gen_range(1.0..500.0),
        stock: rng.gen_range(0..100),
        ..Item::default()
    }
}

/// 6–10 tags per item over 300k Zipf tags, heavy-tailed weights.
fn sparse_skewed(n: usize) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let zipf = Zipf::new(300_000);
    (0..n)
        .map(|i| {
            let want = rng.gen_range(6..=10);
            let mut picked: Vec<usize> = Vec::with_capacity(want);
            while picked.len() < want {
                let t = zipf.sample(&mut rng);
                if !picked.contains(&t) {
                    picked.push(t);
                }
            }
            let tags = picked
                .into_iter()
                .map(|t| {
                    let u: f64 = rng.gen_range(1e-9..1.0);
                    (format!("s:{t}"), (0.1 * u.powf(-1.5)).min(1000.0) as f32)
                })
                .collect();
            item(format!("sk-{i:07}"), tags, &mut rng)
        })
        .collect()
}

/// The live items of the store that `fill` imports into a scratch directory.
fn real_items(fill: impl Fn(&Store)) -> Vec<Item> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    fill(&store);
    let snap = store.snapshot();
    (0..snap.item_id_bound())
        .filter_map(|id| snap.item_name(id))
        .filter_map(|name| store.get_item(&name))
        .filter(|i| !i.tags.is_empty())
        .collect()
}

/// `base` replicated to `n` items with noise (see the module comment).
fn replicate(base: &[Item], n: usize, prefix: &str) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let pool: Vec<&(String, f32)> = base.iter().flat_map(|i| i.tags.iter()).collect();
    (0..n)
        .map(|j| {
            let b = &base[rng.gen_range(0..base.len())];
            let mut tags: Vec<(String, f32)> = Vec::with_capacity(b.tags.len() + 1);
            for (t, w) in &b.tags {
                if rng.gen_bool(0.85) {
                    tags.push((t.clone(), w * rng.gen_range(0.7f32..1.3)));
                }
            }
            if tags.is_empty() {
                let (t, w) = &b.tags[rng.gen_range(0..b.tags.len())];
                tags.push((t.clone(), *w));
            }
            if rng.gen_bool(0.5) {
                let (t, w) = pool[rng.gen_range(0..pool.len())];
                if !tags.iter().any(|(x, _)| x == t) {
                    tags.push((t.clone(), *w * rng.gen_range(0.7f32..1.3)));
                }
            }
            item(format!("{prefix}-{j:07}"), tags, &mut rng)
        })
        .collect()
}

fn latency(store: &Store, queries: &[Query]) -> (f64, f64, Vec<Vec<recostore::Recommendation>>) {
    let mut answers = Vec::with_capacity(queries.len());
    let mut t: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let s = Instant::now();
            let r = store.query(q).expect("query");
            let e = s.elapsed();
            answers.push(r);
            e
        })
        .collect();
    t.sort();
    (pct(&t, 0.5), pct(&t, 0.99), answers)
}

/// Exact cosine of dense rows `a` and `b` (sorted by tag id) in f64.
fn cosine(a: &[(u32, f32)], b: &[(u32, f32)]) -> f64 {
    let norm = |r: &[(u32, f32)]| r.iter().map(|p| (p.1 as f64).powi(2)).sum::<f64>().sqrt();
    let (mut i, mut j, mut dot) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += a[i].1 as f64 * b[j].1 as f64;
                i += 1;
                j += 1;
            }
        }
    }
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot / n
    } else {
        0.0
    }
}

/// How many queries a peer answered with recostore's top-`K` set, and how many more differ
/// only by equal scores at the cut (checked in f64 from the forward rows).
fn agreement(
    rows: &[Vec<(u32, f32)>],
    row_of: &dyn Fn(u32) -> Vec<(u32, f32)>,
    query_ids: &[u32],
    ours: &[Vec<u32>],
    theirs: &[Vec<u32>],
) -> (usize, usize) {
    let (mut same, mut ties) = (0, 0);
    for (q, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let b: Vec<u32> = b
            .iter()
            .copied()
            .filter(|&i| i != query_ids[q])
            .take(K)
            .collect();
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort_unstable();
        sb.sort_unstable();
        if sa == sb {
            same += 1;
            continue;
        }
        // Both lists' scores, exactly: equal multisets of scores mean the lists differ only
        // in which of equally scored items made the cut.
        let score = |ids: &[u32]| -> Vec<f64> {
            let mut s: Vec<f64> = ids.iter().map(|&i| cosine(&rows[q], &row_of(i))).collect();
            s.sort_by(|x, y| y.total_cmp(x));
            s
        };
        let (xa, xb) = (score(a), score(&b));
        let top = xa.first().copied().unwrap_or(0.0).max(1e-12);
        if xa.len() == xb.len() && xa.iter().zip(&xb).all(|(x, y)| (x - y).abs() <= 1e-5 * top) {
            ties += 1;
        }
    }
    (same, ties)
}

fn catalogue(name: &str, about: &str, items: Vec<Item>) {
    let n = items.len();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        tmp.path(),
        Config::default().rebuild_threshold(None).neighbours(0),
    )
    .expect("open");
    let t = Instant::now();
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("load");
    }
    store.flush().expect("flush");
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.rebuild().expect("rebuild");
    let fold_s = t.elapsed().as_secs_f64();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let picks: Vec<String> = (0..QUERIES)
        .map(|_| items[rng.gen_range(0..n)].id.clone())
        .collect();
    drop(items);
    let snap = store.snapshot();
    let stats = store.stats();
    let seg = recostore::internals::segment_data(&snap);
    let postings: u64 = (0..seg.items.forward.rows() as u32)
        .map(|r| seg.items.forward.row_vec(r).len() as u64)
        .sum();

    let queries: Vec<Query> = picks
        .iter()
        .map(|id| Query::similar_to(id.clone()).k(K))
        .collect();
    let brute: Vec<Query> = queries[..BRUTE_QUERIES]
        .iter()
        .map(|q| q.clone().method(Method::Exhaustive))
        .collect();
    latency(&store, &queries); // warm the mapping, as a serving process would be
    if std::env::var("RECOSTORE_BENCH_PROFILE").is_ok() {
        // For `perf record -p`: the slowest queries' work, then the queries in a loop.
        let mut slow: Vec<(Duration, usize, recostore::QueryStats)> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let t = Instant::now();
                let (_, st) = store.query_with_stats(q).expect("query");
                (t.elapsed(), i, st)
            })
            .collect();
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (t, i, st) in slow.iter().take(8) {
            let row = seg
                .items
                .forward
                .row_vec(snap.item_id(&picks[*i]).expect("id"));
            eprintln!("{t:?} query {i} ({} tags {:?}): {st:?}", row.len(), row);
        }
        // `RECOSTORE_BENCH_PROFILE=all` loops every query (the median's work), anything else
        // the eight slowest (the tail's).
        let take = if std::env::var("RECOSTORE_BENCH_PROFILE").as_deref() == Ok("all") {
            slow.len()
        } else {
            8
        };
        let n = slow.len().max(1) as u64;
        let mean =
            |f: fn(&recostore::QueryStats) -> u64| slow.iter().map(|s| f(&s.2)).sum::<u64>() / n;
        eprintln!(
            "mean per query: scored {}, postings {}, column slots {}, windows swept {}, skipped {}",
            mean(|s| s.scored),
            mean(|s| s.postings),
            mean(|s| s.column_slots),
            mean(|s| s.windows_swept),
            mean(|s| s.windows_skipped)
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            for (_, i, _) in slow.iter().take(take) {
                std::hint::black_box(store.query(&queries[*i]).expect("query"));
            }
        }
        return;
    }
    let (p50, p99, answers) = latency(&store, &queries);
    let (b50, b99, brute_answers) = latency(&store, &brute);
    // The oracle inside the store: the fast path's answers against brute force's.
    let exact = answers
        .iter()
        .zip(&brute_answers)
        .filter(|(a, b)| {
            a.iter().map(|r| &r.id).collect::<Vec<_>>()
                == b.iter().map(|r| &r.id).collect::<Vec<_>>()
        })
        .count();

    let query_ids: Vec<u32> = picks
        .iter()
        .map(|id| snap.item_id(id).expect("id"))
        .collect();
    let rows: Vec<Vec<(u32, f32)>> = query_ids
        .iter()
        .map(|&i| seg.items.forward.row_vec(i))
        .collect();
    let ours: Vec<Vec<u32>> = answers
        .iter()
        .map(|a| a.iter().filter_map(|r| snap.item_id(&r.id)).collect())
        .collect();
    let row_of = |i: u32| seg.items.forward.row_vec(i);
    let dir = PathBuf::from(format!("target/bench-data/shape-{name}"));
    let dumped = peer::dump(&store, &rows, &dir).map_err(|e| e.to_string());
    // One more than k: the peers' lists hold the query item itself, which recostore excludes.
    let peers = [
        (
            "sparse_dot_topn",
            "sparse_dot_topn_peer.py",
            vec!["--entry", "unchecked"],
        ),
        ("BMP", "bmp_peer.py", vec![]),
    ];

    println!("### {name}: {n} items, {about}\n");
    println!(
        "{} tags in use, {:.1} tags per item; load {:.1} s ({:.0} items/s), fold {:.1} s.\n",
        stats.tags,
        postings as f64 / n as f64,
        load_s,
        n as f64 / load_s,
        fold_s
    );
    println!("| engine | p50 ms | p99 ms | recostore's p50 is | top-10 as recostore's (ties) |");
    println!("|---|---|---|---|---|");
    println!("| recostore (default path) | {p50:.3} | {p99:.3} | — | {exact}/{BRUTE_QUERIES} equal brute force's lists |");
    println!(
        "| brute force (recostore's forward index) | {b50:.2} | {b99:.2} | {:.1}× faster | — |",
        b50 / p50
    );
    for (label, script, extra) in peers {
        let run = dumped
            .clone()
            .and_then(|()| peer::run(script, &dir, K + 1, &extra));
        match run {
            Ok(r) => {
                let (same, ties) = agreement(&rows, &row_of, &query_ids, &ours, &r.top);
                println!(
                    "| {label} {} | {:.3} | {:.3} | {:.1}× faster (p99 {:.1}×) | {same}/{QUERIES} ({ties}) |",
                    r.version,
                    r.p50_ms,
                    r.p99_ms,
                    r.p50_ms / p50,
                    r.p99_ms / p99
                );
            }
            Err(e) => println!(
                "| {label} | not run: {} | | | |",
                e.lines().next().unwrap_or("")
            ),
        }
    }
    println!();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("shapes: bench");
        return;
    }
    let n: usize = std::env::var("RECOSTORE_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pick = std::env::var("RECOSTORE_BENCH_SHAPES").unwrap_or_default();
    let wanted = |name: &str| pick.is_empty() || pick.split(',').any(|p| p.trim() == name);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("## Catalogue shapes (commit {commit}; `cargo bench --bench shapes`)\n");
    if wanted("zipf") {
        catalogue(
            "zipf",
            "24–32 tags each from a 100,000-tag Zipf vocabulary, weights 0.1–1.0 (demo::zipf_items)",
            recostore::demo::zipf_items(n, 100_000, 24..=32, 7),
        );
    }
    if wanted("sparse-skewed") {
        catalogue(
            "sparse-skewed",
            "6–10 tags each from a 300,000-tag Zipf vocabulary, heavy-tailed weights",
            sparse_skewed(n),
        );
    }
    let data = Path::new("../shared/data");
    let opts = ImportOptions::default();
    if wanted("movielens") {
        let base = real_items(|s| {
            import::movielens::import(s, &data.join("movielens-small"), &opts).expect("import");
        });
        let about = format!(
            "the tags of MovieLens small's {} items replicated with noise",
            base.len()
        );
        catalogue("movielens", &about, replicate(&base, n, "ml"));
    }
    if wanted("retail") {
        let base = real_items(|s| {
            import::retail::import(s, &data.join("online-retail/online-retail.csv.gz"), &opts)
                .expect("import");
        });
        let about = format!(
            "the tags of Online Retail's {} items replicated with noise",
            base.len()
        );
        catalogue("retail", &about, replicate(&base, n, "rt"));
    }
}
