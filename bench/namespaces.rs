//! What a namespace costs: one store holding two shops of different shapes, each straight
//! after import (Online Retail in the default namespace and again in `shop`, MovieLens small
//! in `films`), with writes flowing into `films` throughout.
//!
//! Run: `cargo bench --bench namespaces` (needs `../shared/data`). Two parts, each in rounds
//! that alternate their order:
//! * **Reads.** `for-user` k = 10 for 400 Online Retail customers, asked of the default
//!   namespace (the baseline) and of `shop` (the same data behind the key prefix), one user
//!   after the other on one thread; p50 and p99 of each.
//! * **Writes.** Batches of 100 view events (customers viewing best sellers), recorded into
//!   the default namespace (the baseline), into `shop`, and into `shop-quota` (a third copy
//!   opened with a `max_records` quota, which makes every write count the records); events
//!   per second of each, the median of 5 rounds of 2 s.
//!
//! Figures go to `bench/RESULTS.md` by hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use recostore::import::{movielens, retail, ImportOptions};
use recostore::{Ask, Event, Quota, Scenario, Store};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let csv = data.join("online-retail/online-retail.csv.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    let shop = root.namespace("shop").expect("shop");
    let quota = root
        .namespace_with("shop-quota", Quota::default().max_records(10_000_000))
        .expect("shop-quota");
    let films = root.namespace("films").expect("films");
    let opts = ImportOptions::default();
    let started = Instant::now();
    for s in [&root, &shop, &quota] {
        retail::import(s, &csv, &opts).expect("import retail");
    }
    movielens::import(&films, &data.join("movielens-small"), &opts).expect("import movielens");
    eprintln!("imported in {:.1} s", started.elapsed().as_secs_f64());
    for (name, s) in [("default", &root), ("films", &films)] {
        let st = s.stats();
        eprintln!(
            "{name}: {} items, {} users, {} events",
            st.items, st.users, st.events
        );
    }

    let snap = root.snapshot();
    let users: Vec<String> = (0..snap.user_id_bound())
        .step_by(10)
        .filter_map(|id| snap.user_name(id))
        .take(400)
        .collect();
    let top: Vec<String> = root
        .recommend(&Ask::new(Scenario::Trending).k(200))
        .expect("trending")
        .into_iter()
        .map(|r| r.id)
        .collect();
    let film_ids: Vec<String> = films
        .recommend(&Ask::new(Scenario::Trending).k(200))
        .expect("films")
        .into_iter()
        .map(|r| r.id)
        .collect();
    let clock = root.stats().clock;
    let film_clock = films.stats().clock;

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Another shop writing all along: 500 views every 10 ms into `films`.
        s.spawn(|| {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let evs: Vec<Event> = (0..500)
                    .map(|i| {
                        Event::view(
                            format!("f{}", (n + i) % 2_000),
                            film_ids[(n + i) % film_ids.len()].as_str(),
                            film_clock,
                        )
                    })
                    .collect();
                films.record_events(&evs).expect("film views");
                n += 500;
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        reads(&root, &shop, &users);
        writes(&[&root, &shop, &quota], &users, &top, clock);
        stop.store(true, Ordering::Relaxed);
    });
}

fn reads(root: &Store, shop: &Store, users: &[String]) {
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..4 {
        for u in users {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let store = [root, shop][side];
                let ask = Ask::new(Scenario::ForUser).user(u.as_str()).k(10);
                let t = Instant::now();
                store.recommend(&ask).expect("answer");
                times[side].push(t.elapsed());
            }
        }
    }
    println!("| for-user k = 10, Online Retail, 400 customers × 4 rounds | p50 µs | p99 µs |");
    println!("|---|---|---|");
    for (name, t) in ["default namespace (baseline)", "namespace `shop`"]
        .iter()
        .zip(times.iter_mut())
    {
        t.sort();
        println!("| {name} | {:.0} | {:.0} |", pct(t, 0.5), pct(t, 0.99));
    }
}

fn writes(stores: &[&Store], users: &[String], top: &[String], clock: u64) {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); stores.len()];
    let mut n = 0usize;
    for round in 0..5 {
        for j in 0..stores.len() {
            let side = (j + round) % stores.len();
            let store = stores[side];
            let started = Instant::now();
            let mut events = 0usize;
            while started.elapsed() < Duration::from_secs(2) {
                let evs: Vec<Event> = (0..100)
                    .map(|i| {
                        Event::view(
                            users[(n + i) % users.len()].as_str(),
                            top[(n + i) % top.len()].as_str(),
                            clock,
                        )
                    })
                    .collect();
                store.record_events(&evs).expect("views");
                n += 100;
                events += 100;
            }
            rates[side].push(events as f64 / started.elapsed().as_secs_f64());
        }
    }
    println!();
    println!("| batches of 100 views, medians of 5 rounds of 2 s | events/s | vs baseline |");
    println!("|---|---|---|");
    let base = median(rates[0].clone());
    for (name, r) in [
        "default namespace (baseline)",
        "namespace `shop`",
        "namespace `shop-quota` (max_records set)",
    ]
    .iter()
    .zip(rates)
    {
        let m = median(r);
        println!("| {name} | {m:.0} | {:.2}× |", m / base);
    }
}
