//! Soak: everything a live shop does at once, for a long time, watched minute by minute.
//!
//! Run: `cargo bench --bench soak` (30 minutes; `RECOSTORE_SOAK_SECS` changes it). A store of
//! 100,000 generated items takes, concurrently:
//! * two query threads (similar items, for-user, together, trending through a plugin slot);
//! * event batches: 200 events every 100 ms (2,000/s), stamped with the wall clock;
//! * stock and price upserts: 50 items every 200 ms;
//! * a rebuild every 2 minutes and a plugin hot swap every 30 s.
//!
//! Every minute it prints the process's resident memory, the store directory's size, the
//! events recorded and the query count, p50 and p99 of that minute, the slowest event batch of
//! the minute (writes wait while sled's space is reclaimed), the reclaims so far (the `N` of
//! the `db.N` that `CURRENT` names; `Config::reclaim_growth` runs them in the background), and
//! the errors; at the end it closes the store and compacts it, to show how much of the
//! directory was live. Targets: memory, store size and p99 flat after warm-up, no error. The
//! event log keeps 10 minutes of store time (`Config::event_log_retention_secs`;
//! `RECOSTORE_SOAK_KEEP_SECS` changes it, 0 keeps every event), so the live data levels off
//! once the first window has passed, and sled's replaced pages are reclaimed in the
//! background. The co-occurrence indexes are bounded at 500,000 lines
//! (`Config::cooccurrence_lines`) so the bound is reached in minutes and memory can flatten
//! within the run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recostore::plugin::Variant;
use recostore::{Ask, Scenario};
use recostore::{Config, Store};

mod traffic;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ITEMS: usize = 100_000;
const USERS: usize = 20_000;

/// A ranking plugin: score = sign × similarity (the first feature column).
fn plugin(sign: f32) -> String {
    format!(
        r#"(module
  (memory (export "memory") 2)
  (func (export "recostore_abi_version") (result i32) (i32.const 1))
  (func (export "recostore_features") (result i64) (i64.const 1))
  (func (export "recostore_input") (param $n i32) (result i32) (i32.const 1024))
  (func (export "recostore_score") (param $n i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (f32.store
        (i32.add (i32.const 1056)
          (i32.mul (i32.add (i32.mul (local.get $n) (i32.const 2)) (local.get $i)) (i32.const 4)))
        (f32.mul (f32.const {sign})
          (f32.load (i32.add (i32.const 1056)
            (i32.mul (i32.add (local.get $n) (local.get $i)) (i32.const 4))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n)))"#
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// Reclaims so far: the generation of sled's directory that the store's `CURRENT` names.
fn reclaims(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join("CURRENT"))
        .ok()
        .and_then(|s| s.trim().strip_prefix("db.")?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("soak: bench");
        return;
    }
    let secs: u64 = std::env::var("RECOSTORE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800);
    let keep: u64 = std::env::var("RECOSTORE_SOAK_KEEP_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config::default()
        .cooccurrence_lines(500_000)
        .event_log_retention_secs((keep > 0).then_some(keep));
    let store = Store::open_with(dir.path(), cfg).expect("open");
    let items = recostore::demo::zipf_items(ITEMS, 5_000, 4..=8, 7);
    for chunk in items.chunks(10_000) {
        store.upsert_items(chunk).expect("items");
    }
    // A first day of traffic, so for-user and together have something to say.
    let mut warm = traffic::events(100_000, USERS, &items, 3);
    let t0 = now() - 86_000;
    for (i, e) in warm.iter_mut().enumerate() {
        e.ts = t0 + i as u64 / 2;
    }
    for chunk in warm.chunks(10_000) {
        store.record_events(chunk).expect("warm-up events");
    }
    store.rebuild().expect("rebuild");
    store
        .plugins()
        .load("soak", plugin(1.0).as_bytes())
        .expect("plugin");
    store
        .plugins()
        .set_slot(
            "home",
            vec![Variant::new("builtin", 1), Variant::new("soak", 1)],
        )
        .expect("slot");
    println!("soak: {ITEMS} items, {USERS} users, {secs} s, event log kept {keep} s (0: all); minute rss_mib store_mib events queries p50_ms p99_ms slowest_write_ms reclaims errors");

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    // The slowest event batch since the last report, in microseconds.
    let slowest_write = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let items = Arc::new(items);
    let mut threads = Vec::new();
    for q in 0..2u64 {
        let (store, stop, errors, lat, items) = (
            store.clone(),
            stop.clone(),
            errors.clone(),
            latencies.clone(),
            items.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + q);
            while !stop.load(Ordering::Relaxed) {
                let item = items[traffic::skewed(&mut rng, items.len())].id.clone();
                let user = format!("user-{}", traffic::skewed(&mut rng, USERS));
                let ask = match rng.gen_range(0..4) {
                    0 => Ask::new(Scenario::Similar { item }),
                    1 => Ask::new(Scenario::ForUser).user(user),
                    2 => Ask::new(Scenario::Together { item }),
                    _ => Ask::new(Scenario::Trending).user(user).slot("home"),
                };
                let started = Instant::now();
                match store.serve(&ask) {
                    Ok(_) | Err(recostore::Error::NotFound { .. }) => {}
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("query error: {e}");
                    }
                }
                if let Ok(mut l) = lat.lock() {
                    l.push(started.elapsed());
                }
            }
        }));
    }
    {
        let (store, stop, errors, events, items, slowest) = (
            store.clone(),
            stop.clone(),
            errors.clone(),
            events.clone(),
            items.clone(),
            slowest_write.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let mut batch = traffic::events(200, USERS, &items, 1_000 + round);
                let t = now();
                for e in &mut batch {
                    e.ts = t;
                    if let Some(s) = e.session.take() {
                        e.session = Some(format!("r{round}-{s}"));
                    }
                }
                let started = Instant::now();
                let recorded = store.record_events(&batch);
                slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                match recorded {
                    Ok(n) => {
                        events.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("event error: {e}");
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    {
        let (store, stop, errors, items) =
            (store.clone(), stop.clone(), errors.clone(), items.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..50)
                    .map(|_| {
                        let it = items[rng.gen_range(0..items.len())].clone();
                        it.stock(rng.gen_range(0..100))
                            .price(rng.gen_range(1.0..200.0))
                    })
                    .collect();
                if let Err(e) = store.upsert_items(&batch) {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("upsert error: {e}");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    let started = Instant::now();
    let (mut last_rebuild, mut last_swap, mut sign) = (Instant::now(), Instant::now(), 1.0f32);
    let mut minute = 0u64;
    let mut next_report = Duration::from_secs(60);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        if last_swap.elapsed() >= Duration::from_secs(30) {
            sign = -sign;
            if let Err(e) = store.plugins().swap("soak", plugin(sign).as_bytes()) {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("swap error: {e}");
            }
            last_swap = Instant::now();
        }
        if last_rebuild.elapsed() >= Duration::from_secs(120) {
            if let Err(e) = store.rebuild() {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rebuild error: {e}");
            }
            last_rebuild = Instant::now();
        }
        if started.elapsed() >= next_report {
            minute += 1;
            next_report += Duration::from_secs(60);
            let mut lat = latencies
                .lock()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default();
            lat.sort();
            println!(
                "minute {minute} {:.0} {:.1} {} {} {:.3} {:.3} {:.0} {} {}",
                recostore::internals::resident_bytes().unwrap_or(0) as f64 / 1048576.0,
                dir_bytes(dir.path()) as f64 / 1048576.0,
                events.load(Ordering::Relaxed),
                lat.len(),
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                slowest_write.swap(0, Ordering::Relaxed) as f64 / 1000.0,
                reclaims(dir.path()),
                errors.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let errs = errors.load(Ordering::Relaxed);
    println!(
        "soak done: {} events, {errs} errors",
        events.load(Ordering::Relaxed)
    );
    // How much of the directory is live data: close, compact, and compare. The difference
    // is what the durable layer keeps of rewritten pages (the growth the minutes show beyond
    // the event log).
    drop(store);
    let started = Instant::now();
    match Store::compact(dir.path(), Config::default().cooccurrence_lines(500_000)) {
        Ok(r) => println!(
            "compact: {:.1} MiB -> {:.1} MiB, {} keys, {:.1} s",
            r.bytes_before as f64 / 1048576.0,
            r.bytes_after as f64 / 1048576.0,
            r.keys,
            started.elapsed().as_secs_f64()
        ),
        Err(e) => println!("compact failed: {e}"),
    }
    assert_eq!(errs, 0, "errors during the soak");
}
