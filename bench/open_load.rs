//! Bulk load and open: how fast a large store fills, and how fast (and how lightly) it opens.
//!
//! Run: `cargo bench --bench open_load` (1,000,000 items × 24 tags). Set `RECOSTORE_BENCH_ITEMS`
//! for another size, and `RECOSTORE_BENCH_BULK_ONLY=1` to run the bulk load alone (to profile;
//! `RECOSTORE_BENCH_BULK_RUNS=5` repeats it into fresh stores and prints the median). Each
//! timed load starts after a `sync`, so that earlier phases' write-back is not on its clock.
//! Every figure is printed beside a baseline measured in the same run:
//!
//! * load: `Store::bulk_load_items` (records in chunks, segment built straight from the
//!   input) and `Store::upsert_items` in batches plus a rebuild, vs raw sled `apply_batch` of
//!   the same encoded bytes, a key per record;
//! * open: `Store::open` (sled + segment, checksum or structure-only) vs deserialising the same
//!   records with bincode, each in a fresh child process so RSS starts clean; medians of 7;
//! * open after `Store::compact`, which packs the upserted store's item records into chunks;
//! * open after a crash: a child writing stock updates to the compacted store is SIGKILLed,
//!   then a fresh child times the open that recovers, 7 times, beside the clean open in the
//!   same run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use recostore::internals::codec::{self, StoredItem};
use recostore::{Config, Item, SegmentVerify, Store};

const VOCAB: usize = 100_000;
const TAGS_PER_ITEM: usize = 24;
const RUNS: usize = 7;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn gen_items(n: usize) -> Vec<Item> {
    recostore::demo::zipf_items(n, VOCAB, TAGS_PER_ITEM..=TAGS_PER_ITEM, 1)
}

/// Let the disk finish what earlier phases wrote, so that their write-back does not land on
/// the next phase's clock.
fn settle_disk() {
    let _ = Command::new("sync").status();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Child mode: open once and report `ms rss_before rss_after_open rss_after_query`.
fn child(mode: &str, path: &Path) {
    let before = rss_kib();
    let t = Instant::now();
    match mode {
        "bincode" => {
            let bytes = std::fs::read(path).expect("baseline file");
            let (items, _): (Vec<StoredItem>, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                    .expect("decode");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let after = rss_kib();
            println!("{ms} {before} {after} {after} {}", items.len());
        }
        "segment" => {
            let seg_dir = path.join("segments");
            let file = std::fs::read_dir(&seg_dir)
                .expect("segments dir")
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "seg"))
                .expect("a segment file");
            let seg = recostore::internals::segment::Segment::open(&file, SegmentVerify::Structure)
                .expect("segment");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let after = rss_kib();
            println!("{ms} {before} {after} {after} {}", seg.data().items.slots());
        }
        _ => {
            let verify = if mode == "checksum" {
                SegmentVerify::Checksum
            } else {
                SegmentVerify::Structure
            };
            let store =
                Store::open_with(path, Config::default().segment_verify(verify)).expect("open");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let after = rss_kib();
            let _ = store.get_item("sku-0000042").expect("item present");
            let _ = store.similar_items("sku-0000042", 10).expect("query");
            let queried = rss_kib();
            println!("{ms} {before} {after} {queried} {}", store.stats().items);
        }
    }
}

/// One open in a fresh child: (ms, RSS growth MiB, RSS growth after a query MiB).
fn open_in_child(mode: &str, path: &Path) -> (f64, f64, f64) {
    let exe = std::env::current_exe().expect("bench exe");
    let out = Command::new(&exe)
        .args(["--child", mode])
        .arg(path)
        .output()
        .expect("child");
    let s = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = s
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(
        f.len() == 5,
        "child failed: {s} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (f[0], (f[2] - f[1]) / 1024.0, (f[3] - f[1]) / 1024.0)
}

fn open_in_children(mode: &str, path: &Path) -> (f64, f64, f64) {
    let (mut ms, mut grow, mut q) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (a, b, c) = open_in_child(mode, path);
        ms.push(a);
        grow.push(b);
        q.push(c);
    }
    (median(ms), median(grow), median(q))
}

/// Child mode `writer`: stock updates to the loaded items, 1,000 per call, until killed.
fn writer(path: &Path, n: usize) {
    let store = Store::open_with(path, Config::default()).expect("writer opens");
    let mut i = 0;
    loop {
        let batch: Vec<Item> = (i..i + 1000)
            .filter_map(|j| store.get_item(&format!("sku-{:07}", j % n)))
            .map(|mut it| {
                it.stock = it.stock.wrapping_add(1) % 100;
                it
            })
            .collect();
        store.upsert_items(&batch).expect("update");
        i += 1000;
    }
}

/// Open after SIGKILL: a child writes stock updates for `after`, is killed, and a fresh child
/// times the open that recovers; `RUNS` times. Returns the open times (ms).
fn open_after_kills(path: &Path, n: usize, after: std::time::Duration) -> Vec<f64> {
    let exe = std::env::current_exe().expect("bench exe");
    (0..RUNS)
        .map(|_| {
            let mut w = Command::new(&exe)
                .args(["--child", "writer"])
                .arg(path)
                .arg(n.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("writer");
            std::thread::sleep(after);
            w.kill().expect("SIGKILL the writer");
            let _ = w.wait();
            open_in_child("structure", path).0
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        if args[2] == "writer" {
            return writer(Path::new(&args[3]), args[4].parse().expect("item count"));
        }
        return child(&args[2], Path::new(&args[3]));
    }
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return; // cargo test --benches / --list: nothing to list
    }
    let n: usize = std::env::var("RECOSTORE_BENCH_ITEMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().expect("tempdir");
    println!("# open_load: {n} items x {TAGS_PER_ITEM} tags, vocabulary {VOCAB} (Zipf)");
    let t = Instant::now();
    let items = gen_items(n);
    println!("generated in {:.1}s", t.elapsed().as_secs_f64());

    if std::env::var_os("RECOSTORE_BENCH_BULK_ONLY").is_some() {
        // The bulk load alone (to profile: `perf record` this process), into a fresh store
        // `RECOSTORE_BENCH_BULK_RUNS` times (default 1), then the median.
        let runs: usize = std::env::var("RECOSTORE_BENCH_BULK_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let mut secs = Vec::new();
        for run in 0..runs.max(1) {
            let dir = root.path().join(format!("bulk{run}"));
            let store = Store::open(&dir).expect("open");
            settle_disk();
            let t = Instant::now();
            store.bulk_load_items(&items).expect("bulk load");
            let s = t.elapsed().as_secs_f64();
            println!("bulk load: {s:.2} s ({:.0} items/s)", n as f64 / s);
            secs.push(s);
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let m = median(secs);
        println!(
            "median of {}: {m:.2} s ({:.0} items/s)",
            runs.max(1),
            n as f64 / m
        );
        return;
    }
    // Baseline: raw sled inserts of the same encoded record bytes, same batching, then flush.
    let raw: Vec<(Vec<u8>, Vec<u8>)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let row = StoredItem {
                name: it.id.clone(),
                tags: it
                    .tags
                    .iter()
                    .enumerate()
                    .map(|(k, (_, w))| (k as u32, *w))
                    .collect(),
                title: it.title.clone(),
                category: it.category.clone(),
                price: it.price,
                stock: it.stock,
                members_only: false,
                created_at: 0,
            };
            let key = (i as u32).to_be_bytes().to_vec();
            let value = codec::encode(&key, &row).expect("a generated item encodes");
            (key, value)
        })
        .collect();
    let db = sled::open(root.path().join("raw-sled")).expect("sled");
    settle_disk();
    let t = Instant::now();
    for chunk in raw.chunks(10_000) {
        let mut b = sled::Batch::default();
        for (k, v) in chunk {
            b.insert(k.as_slice(), v.as_slice());
        }
        db.apply_batch(b).expect("batch");
    }
    db.flush().expect("flush");
    let raw_s = t.elapsed().as_secs_f64();
    drop(db);

    let dir = root.path().join("store");
    let store = Store::open_with(&dir, Config::default().rebuild_threshold(None)).expect("open");
    settle_disk();
    let t = Instant::now();
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("load");
    }
    store.flush().expect("flush");
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rep = store.rebuild().expect("rebuild");
    let build_s = t.elapsed().as_secs_f64();
    drop(store);

    // The bulk path, into a fresh store: one call, durable and folded when it returns.
    let bulk_dir = root.path().join("bulk");
    let store = Store::open(&bulk_dir).expect("open");
    settle_disk();
    let t = Instant::now();
    let bulk = store.bulk_load_items(&items).expect("bulk load");
    let bulk_s = t.elapsed().as_secs_f64();
    assert_eq!(bulk.items, n);
    drop(store);
    let sled_mib = |d: &Path| {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let m = e
                        .metadata()
                        .map(|m| (m.is_dir(), m.len()))
                        .unwrap_or((false, 0));
                    if m.0 {
                        walk(&e.path())
                    } else {
                        m.1
                    }
                })
                .sum()
        }
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("db"))
            .map(|e| walk(&e.path()))
            .sum::<u64>() as f64
            / (1 << 20) as f64
    };
    println!();
    println!("| measure | recostore | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| bulk load (items/s) | {:.0} (`bulk_load_items`, one call: durable, segment built, {bulk_s:.2} s) | {:.0} (raw sled `apply_batch`, same bytes, a key each) | {:.2}x |",
        n as f64 / bulk_s,
        n as f64 / raw_s,
        raw_s / bulk_s
    );
    println!(
        "| load by `upsert_items` (items/s) | {:.0} (10k batches + flush; the rebuild below comes on top) | {:.0} (raw sled) | {:.2}x |",
        n as f64 / load_s,
        n as f64 / raw_s,
        raw_s / load_s
    );
    println!(
        "| segment build | {build_s:.2} s, {:.0} MiB | — | — |",
        rep.bytes as f64 / (1 << 20) as f64
    );

    // Baseline for opening: the same records as one bincode file, deserialised.
    let base_file = root.path().join("records.bincode");
    let rows: Vec<StoredItem> = raw
        .iter()
        .map(|(_, v)| codec::decode(b"k", v).expect("row"))
        .collect();
    std::fs::write(
        &base_file,
        bincode::serde::encode_to_vec(&rows, bincode::config::standard()).expect("encode"),
    )
    .expect("write baseline");
    drop(rows);
    drop(raw);
    drop(items);
    let (b_ms, b_rss, _) = open_in_children("bincode", &base_file);
    for (mode, path) in [
        ("segment", &dir),
        ("structure", &dir),
        ("checksum", &dir),
        ("structure", &bulk_dir),
    ] {
        let (ms, rss, q) = open_in_children(mode, path);
        let what = match mode {
            "segment" => "segment file alone, structural validation".to_string(),
            m if path == &bulk_dir => format!(
                "`Store::open` after the bulk load (sled {:.0} MiB), verify={m}",
                sled_mib(path)
            ),
            m => format!(
                "`Store::open` after upserts and a rebuild (sled {:.0} MiB), verify={m}",
                sled_mib(path)
            ),
        };
        println!(
            "| open: {what} (median of {RUNS}) | {ms:.3} ms, RSS +{rss:.1} MiB (+{q:.1} MiB after a query) | {b_ms:.1} ms, RSS +{b_rss:.1} MiB (bincode deserialise) | {:.1}x faster |",
            b_ms / ms
        );
    }
    // The upserted store after `compact`, which packs its item records into chunks.
    let t = Instant::now();
    let compacted = Store::compact(&dir, Config::default()).expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    println!(
        "| `Store::compact` of the upserted store | {compact_s:.1} s: {} item records packed into chunks, sled {:.0} MiB after | — | — |",
        compacted.packed_records,
        sled_mib(&dir)
    );
    let (ms, rss, q) = open_in_children("structure", &dir);
    println!(
        "| open: `Store::open` after upserts, a rebuild and `Store::compact` (sled {:.0} MiB), verify=structure (median of {RUNS}) | {ms:.3} ms, RSS +{rss:.1} MiB (+{q:.1} MiB after a query) | {b_ms:.1} ms, RSS +{b_rss:.1} MiB (bincode deserialise) | {:.1}x faster |",
        sled_mib(&dir),
        b_ms / ms
    );
    // After a crash: the same open (of the compacted store), each time after a writer was
    // killed mid-stream.
    let clean = open_in_children("structure", &dir).0;
    let crashed = open_after_kills(&dir, n, std::time::Duration::from_millis(1500));
    let worst = crashed.iter().copied().fold(0.0, f64::max);
    println!(
        "| open after SIGKILL of a writer (1.5 s of stock updates, 1,000 per call; median of {RUNS}, worst) | {:.1} ms, worst {worst:.1} ms | {clean:.1} ms (clean close, same run) | {:.1}x slower |",
        median(crashed.clone()),
        median(crashed) / clean
    );
}
