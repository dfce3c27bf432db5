//! Leader and replica through an object store (a local directory, through `object_store`):
//! what a generation costs to publish and to ship after a 1% change, how long a replica takes
//! from open to its first answer, and how long a leader's write takes to reach a replica's
//! answers when the leader publishes every second.
//!
//! Run: `cargo bench --bench replica`. Data: `RECOSTORE_BENCH_ITEMS` items (default
//! 1,000,000) from `demo::zipf_items` (24–32 tags from 100,000), bulk-loaded, plus 200,000
//! view and purchase events over 20,000 users. The visibility run uses its own smaller store
//! (`RECOSTORE_BENCH_VISIBLE_ITEMS`, default 10,000) as well as the full one, for
//! `RECOSTORE_BENCH_SECS` seconds each (default 60).
//!
//! The same 1% change is also measured on a catalogue written record by record
//! (`upsert_items`, a tenth of the size, at most 100,000 items), before and after `compact`,
//! since what ships depends on that layout.
//!
//! Same-run baselines: the full generation's bytes against what a publish after the change
//! uploads; the replica's open against the leader's own `Store::open` of the same data.
//! Figures go to `bench/RESULTS.md` by hand.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use recostore::replica::object_store::local::LocalFileSystem;
use recostore::replica::object_store::path::Path as ObjPath;
use recostore::replica::object_store::ObjectStore;
use recostore::replica::StoreVersion;
use recostore::{Event, Item, ReplicaSource, Store};

const VOCAB: usize = 100_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn events(users: usize, n: usize, items: usize) -> Vec<Event> {
    (0..n)
        .map(|k| {
            let user = format!("u{}", (k * 7_919) % users);
            let item = format!("sku-{:07}", (k * 104_729) % items);
            let ts = 1_700_000_000 + k as u64;
            if k % 10 == 0 {
                Event::purchase(user, item, 1, 9.5, ts)
            } else {
                Event::view(user, item, ts)
            }
        })
        .collect()
}

fn build(dir: &Path, n: usize) -> (Store, Vec<Item>) {
    let t = Instant::now();
    let store = Store::open(dir).expect("open");
    let items = recostore::demo::zipf_items(n, VOCAB, 24..=32, 7);
    store.bulk_load_items(&items).expect("bulk load");
    for chunk in events(20_000, 200_000, n).chunks(50_000) {
        store.record_events(chunk).expect("events");
    }
    store.checkpoint().expect("checkpoint");
    eprintln!("built {n} items in {:.1} s", t.elapsed().as_secs_f64());
    (store, items)
}

fn directory(path: &Path) -> Arc<dyn ObjectStore> {
    std::fs::create_dir_all(path).expect("mkdir");
    Arc::new(LocalFileSystem::new_with_prefix(path).expect("object store"))
}

fn source(os: Arc<dyn ObjectStore>, poll: Option<Duration>) -> ReplicaSource {
    let mut s = ReplicaSource::new(os, ObjPath::from("live"));
    s.poll_every = poll;
    s
}

/// Publish, open a replica, change 1%, publish again.
fn costs(root: &Path, n: usize) {
    let (store, items) = build(&root.join("leader"), n);
    let os = directory(&root.join("published"));
    let prefix = ObjPath::from("live");
    let first = store.publish(&*os, &prefix).expect("publish");
    println!(
        "| first publish | {:.1} MB in {} files | {:.2} s (copy {:.2} s, writes held) | all of it |",
        mb(first.bytes_total),
        first.files,
        first.seconds,
        first.copy_seconds
    );

    // The leader's own open of the same data, in this process: the baseline for the replica.
    store.close().expect("close");
    let t = Instant::now();
    let store = Store::open(root.join("leader")).expect("reopen leader");
    let leader_open = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.similar_items("sku-0000001", 10).expect("query");
    let leader_first = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let replica =
        Store::open_replica(root.join("replica"), source(os.clone(), None)).expect("replica");
    let replica_open = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let answer = replica
        .store()
        .similar_items("sku-0000001", 10)
        .expect("query");
    let replica_first = t.elapsed().as_secs_f64();
    assert_eq!(
        answer,
        store.similar_items("sku-0000001", 10).expect("query")
    );
    drop(replica);
    let t = Instant::now();
    let replica =
        Store::open_replica(root.join("replica"), source(os.clone(), None)).expect("reopen");
    let replica_reopen = t.elapsed().as_secs_f64();
    println!(
        "| replica open to first answer (download, verify, assemble, open) | {:.2} s + {:.1} ms | leader's own open {:.3} s + {:.1} ms | |",
        replica_open,
        replica_first * 1e3,
        leader_open,
        leader_first * 1e3
    );
    println!("| replica reopen, generation already assembled | {replica_reopen:.3} s | | |");

    // 1% of the catalogue re-tagged; then 1% changed in stock and price only.
    let step = 100;
    let mut retagged: Vec<Item> = items.iter().step_by(step).cloned().collect();
    for it in &mut retagged {
        if let Some(t) = it.tags.first_mut() {
            t.1 = (t.1 * 0.5).max(0.01);
        }
    }
    store.upsert_items(&retagged).expect("re-tag 1%");
    let second = store.publish(&*os, &prefix).expect("publish");
    println!(
        "| after re-tagging 1% ({} items) | uploaded {:.1} MB of {:.1} MB ({:.1}%), {} of {} files | {:.2} s | |",
        retagged.len(),
        mb(second.bytes_uploaded),
        mb(second.bytes_total),
        100.0 * second.bytes_uploaded as f64 / second.bytes_total as f64,
        second.objects_uploaded,
        second.files,
        second.seconds
    );
    let t = Instant::now();
    assert_eq!(replica.poll().expect("poll"), Some(second.generation));
    println!(
        "| replica switch to it (download, verify, assemble, open, swap) | {:.2} s | | |",
        t.elapsed().as_secs_f64()
    );
    let mut stock: Vec<Item> = items.iter().skip(1).step_by(step).cloned().collect();
    for it in &mut stock {
        it.stock += 1;
        it.price = (it.price * 1.1).max(1.0);
    }
    store.upsert_items(&stock).expect("stock 1%");
    let third = store.publish(&*os, &prefix).expect("publish");
    println!(
        "| after a stock and price change on 1% | uploaded {:.1} MB of {:.1} MB ({:.1}%), {} of {} files | {:.2} s | |",
        mb(third.bytes_uploaded),
        mb(third.bytes_total),
        100.0 * third.bytes_uploaded as f64 / third.bytes_total as f64,
        third.objects_uploaded,
        third.files,
        third.seconds
    );
    drop(replica);
    store.close().expect("close");
}

/// What a 1% re-tag ships when the catalogue was written record by record (`upsert_items`,
/// a key per record, spread over every pair file of the records), and again after `compact`
/// packed those records into chunks.
fn costs_upserted(root: &Path, n: usize) {
    let t = Instant::now();
    let dir = root.join("leader");
    let store = Store::open(&dir).expect("open");
    let items = recostore::demo::zipf_items(n, VOCAB, 24..=32, 7);
    for chunk in items.chunks(50_000) {
        store.upsert_items(chunk).expect("upsert");
    }
    store.rebuild().expect("fold");
    eprintln!("upserted {n} items in {:.1} s", t.elapsed().as_secs_f64());
    let os = directory(&root.join("published"));
    let prefix = ObjPath::from("live");
    let retag = |store: &Store, salt: usize| {
        let mut some: Vec<Item> = items.iter().skip(salt).step_by(100).cloned().collect();
        for it in &mut some {
            if let Some(t) = it.tags.first_mut() {
                t.1 = (t.1 * 0.5).max(0.01);
            }
        }
        store.upsert_items(&some).expect("re-tag 1%");
        store.publish(&*os, &prefix).expect("publish")
    };
    store.publish(&*os, &prefix).expect("publish");
    let r = retag(&store, 0);
    println!(
        "| record by record: after re-tagging 1% | uploaded {:.1} MB of {:.1} MB ({:.1}%), {} of {} files | {:.2} s | |",
        mb(r.bytes_uploaded),
        mb(r.bytes_total),
        100.0 * r.bytes_uploaded as f64 / r.bytes_total as f64,
        r.objects_uploaded,
        r.files,
        r.seconds
    );
    store.close().expect("close");
    Store::compact(&dir, recostore::Config::default()).expect("compact");
    let store = Store::open(&dir).expect("reopen");
    store
        .publish(&*os, &prefix)
        .expect("publish the compacted store");
    let r = retag(&store, 1);
    println!(
        "| the same after `compact` | uploaded {:.1} MB of {:.1} MB ({:.1}%), {} of {} files | {:.2} s | |",
        mb(r.bytes_uploaded),
        mb(r.bytes_total),
        100.0 * r.bytes_uploaded as f64 / r.bytes_total as f64,
        r.objects_uploaded,
        r.files,
        r.seconds
    );
    store.close().expect("close");
}

/// A writer adds one new item every 250 ms; a publisher publishes every second (skipping
/// rounds with nothing new); the replica polls every 100 ms; a reader asks the replica for
/// each new item every 2 ms. Returns the write-to-visible latencies in seconds.
fn visibility(root: &Path, n: usize, secs: u64) -> (Vec<f64>, usize) {
    let (store, _) = build(&root.join("leader"), n);
    let os = directory(&root.join("published"));
    let prefix = ObjPath::from("live");
    store.publish(&*os, &prefix).expect("publish");
    let replica = Store::open_replica(
        root.join("replica"),
        source(os.clone(), Some(Duration::from_millis(100))),
    )
    .expect("replica");
    let stop = Arc::new(AtomicBool::new(false));
    let publishes = Arc::new(Mutex::new(0usize));
    let publisher = {
        let (store, os, stop, publishes) =
            (store.clone(), os.clone(), stop.clone(), publishes.clone());
        std::thread::spawn(move || {
            let mut last = None;
            while !stop.load(Ordering::SeqCst) {
                let round = Instant::now();
                let v = StoreVersion::of(&store);
                if last.as_ref() != Some(&v) {
                    store
                        .publish(&*os, &ObjPath::from("live"))
                        .expect("publish");
                    *publishes.lock().expect("lock") += 1;
                    last = Some(v);
                }
                if let Some(rest) = Duration::from_secs(1).checked_sub(round.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })
    };
    let mut latencies = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut k = 0;
    while Instant::now() < end {
        let id = format!("probe-{k}");
        store
            .upsert_items(&[Item::new(id.clone(), [("probe", 1.0)])])
            .expect("write");
        let written = Instant::now();
        // The next write waits for this one to be seen, or 250 ms, whichever is later.
        loop {
            if replica.store().get_item(&id).is_some() {
                latencies.push(written.elapsed().as_secs_f64());
                break;
            }
            if written.elapsed() > Duration::from_secs(120) {
                panic!(
                    "probe {k} never reached the replica: {:?}",
                    replica.status()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(rest) = Duration::from_millis(250).checked_sub(written.elapsed()) {
            std::thread::sleep(rest);
        }
        k += 1;
    }
    stop.store(true, Ordering::SeqCst);
    publisher.join().expect("publisher");
    let published = *publishes.lock().expect("lock");
    (latencies, published)
}

fn main() {
    let n = env("RECOSTORE_BENCH_ITEMS", 1_000_000);
    let small = env("RECOSTORE_BENCH_VISIBLE_ITEMS", 10_000);
    let secs = env("RECOSTORE_BENCH_SECS", 60) as u64;
    let base =
        std::env::var("RECOSTORE_BENCH_DIR").unwrap_or_else(|_| "target/bench-replica".into());
    let base = Path::new(&base);
    let _ = std::fs::remove_dir_all(base);

    println!("\n## {n} items: publish, ship, open\n");
    println!("| step | size or time | baseline (same run) | |\n|---|---|---|---|");
    costs(&base.join("costs"), n);
    let _ = std::fs::remove_dir_all(base.join("costs"));
    // A tenth of the catalogue, at most 100,000: writing record by record is the slow way in
    // (about a minute per 100,000 items with their fold).
    costs_upserted(&base.join("upserted"), (n / 10).clamp(1_000, 100_000));
    let _ = std::fs::remove_dir_all(base.join("upserted"));

    println!("\n## write to replica answer, publish every 1 s, poll every 100 ms, {secs} s\n");
    println!("| items | writes seen | p50 | p99 | max | publishes |\n|---|---|---|---|---|---|");
    for size in [small, n] {
        let (mut l, published) = visibility(&base.join(format!("visible-{size}")), size, secs);
        let count = l.len();
        let (p50, p99) = (pct(&mut l, 0.5), pct(&mut l, 0.99));
        let max = l.iter().copied().fold(0.0, f64::max);
        println!("| {size} | {count} | {p50:.2} s | {p99:.2} s | {max:.2} s | {published} |");
        let _ = std::fs::remove_dir_all(base.join(format!("visible-{size}")));
    }
}
