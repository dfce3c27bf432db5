//! What exposure memory and pages cost, on Online Retail straight after import.
//!
//! Run: `cargo bench --bench exposure` (needs `../shared/data`). Two parts:
//! * **Latency.** `for-user` k = 10 for 400 customers drawn from the data, each with a full
//!   memory (200 shows, recorded as impression events before timing). Variants, asked in
//!   rounds on one thread (each user asked every variant, in an order rotated from user to
//!   user), p50/p99 of each: the plain ask (the baseline), not
//!   shown within a day, a cap of 3 a day, demoted, the first page of a paged ask
//!   (`Config::page_depth` 100) and a later page from its cursor.
//! * **Recording.** Served answers with a user and a slot (each recorded as an impression)
//!   against the same asks without a slot, on 2 threads for 3 s each, 5 rounds in the order
//!   baseline, recording, recording, baseline, ...
//!   while a third thread records 1,000 view events every 10 ms; answers per second, the
//!   recorder's counts, and the lag from an answer to its shows being left out of the next
//!   ask (median of 200 probes, polled every 50 µs).
//!
//! Figures go to `bench/RESULTS.md` by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recostore::import::{retail, ImportOptions};
use recostore::{Ask, Event, Scenario, Store};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY: Duration = Duration::from_secs(86_400);

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let part = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/online-retail/online-retail.csv.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let started = Instant::now();
    retail::import(&store, &file, &ImportOptions::default()).expect("import");
    eprintln!("imported in {:.1} s", started.elapsed().as_secs_f64());
    let view = store.view();
    let snap = view.snapshot();
    let users: Vec<String> = (0..snap.user_id_bound())
        .step_by(10)
        .filter_map(|id| snap.user_name(id))
        .take(400)
        .collect();
    let now = store.stats().clock;
    if part.as_deref().is_none_or(|p| p == "latency") {
        latency(&store, &users, now);
    }
    if part.as_deref().is_none_or(|p| p == "recording") {
        recording(&store, &users, now);
    }
}

/// Builds one variant's ask for a user.
type MakeAsk = Box<dyn Fn(&str) -> Ask>;

fn latency(store: &Store, users: &[String], now: u64) {
    // A full memory each: 20 impressions of 10 items over the last day, from the catalogue's
    // best sellers, so the options have something to leave out.
    let top: Vec<String> = store
        .recommend(&Ask::new(Scenario::Trending).k(400))
        .expect("trending")
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut evs = Vec::new();
    for (n, u) in users.iter().enumerate() {
        for j in 0..20 {
            let items: Vec<String> = (0..10)
                .map(|i| top[(n + j * 10 + i) % top.len()].clone())
                .collect();
            evs.push(Event::impression(
                u.as_str(),
                "home",
                "builtin",
                items,
                now - 3_600 + j as u64,
            ));
        }
    }
    store.record_events(&evs).expect("impressions");
    let variants: Vec<(&str, MakeAsk)> = vec![
        (
            "plain (baseline)",
            Box::new(|u: &str| Ask::new(Scenario::ForUser).user(u).k(10)),
        ),
        (
            "not shown within 1d",
            Box::new(|u: &str| {
                Ask::new(Scenario::ForUser)
                    .user(u)
                    .k(10)
                    .not_shown_within(DAY)
            }),
        ),
        (
            "cap 3/1d",
            Box::new(|u: &str| Ask::new(Scenario::ForUser).user(u).k(10).cap(3, DAY)),
        ),
        (
            "demote shown",
            Box::new(|u: &str| Ask::new(Scenario::ForUser).user(u).k(10).demote_shown()),
        ),
        (
            "paged: first page (depth 100)",
            Box::new(|u: &str| Ask::new(Scenario::ForUser).user(u).k(10).paged()),
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len() + 1];
    // Each user is asked every variant, in an order rotated from user to user, so that no
    // variant always finds the user's state cold (or warm).
    for round in 0..5 {
        for (n, u) in users.iter().skip(round).step_by(5).enumerate() {
            for j in 0..variants.len() {
                let v = (j + n) % variants.len();
                let ask = (variants[v].1)(u);
                let t = Instant::now();
                let served = store.serve(&ask).expect("serve");
                times[v].push(t.elapsed());
                if let (Some(c), true) = (served.next_cursor, ask.paged) {
                    let next = Ask {
                        paged: false,
                        ..ask
                    }
                    .cursor(c);
                    let t = Instant::now();
                    store.serve(&next).expect("page 2");
                    times[variants.len()].push(t.elapsed());
                }
            }
        }
    }
    println!("| for-user, k = 10, Online Retail, 200 shows remembered | p50 µs | p99 µs | asks |");
    println!("|---|---|---|---|");
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v.0)
        .chain(["paged: a later page (cursor)"])
        .collect();
    for (name, t) in names.iter().zip(times.iter_mut()) {
        t.sort();
        println!(
            "| {name} | {:.0} | {:.0} | {} |",
            pct(t, 0.5),
            pct(t, 0.99),
            t.len()
        );
    }
}

fn recording(store: &Store, users: &[String], now: u64) {
    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    std::thread::scope(|s| {
        // Writes flowing: 1,000 views every 10 ms.
        s.spawn(|| {
            let items: Vec<String> = store
                .recommend(&Ask::new(Scenario::Trending).k(200))
                .expect("trending")
                .into_iter()
                .map(|r| r.id)
                .collect();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let evs: Vec<Event> = (0..1_000)
                    .map(|i| {
                        Event::view(
                            format!("w{}", (n + i) % 5_000),
                            items[(n + i) % items.len()].as_str(),
                            now,
                        )
                    })
                    .collect();
                store.record_events(&evs).expect("views");
                n += 1_000;
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // Baseline, recording, recording, baseline, ...: the writer keeps growing the store,
        // so neither side is always measured on the bigger one.
        for round in 0..5 {
            let order = if round % 2 == 0 {
                [(0usize, None), (1, Some("home"))]
            } else {
                [(1usize, Some("home")), (0, None)]
            };
            for (side, slot) in order {
                answered.store(0, Ordering::Relaxed);
                let until = Instant::now() + Duration::from_secs(3);
                std::thread::scope(|q| {
                    for t in 0..2 {
                        let answered = &answered;
                        q.spawn(move || {
                            let mut i = t;
                            while Instant::now() < until {
                                let mut ask = Ask::new(Scenario::ForUser)
                                    .user(users[i % users.len()].as_str())
                                    .k(10);
                                ask.slot = slot.map(str::to_string);
                                store.serve(&ask).expect("serve");
                                answered.fetch_add(1, Ordering::Relaxed);
                                i += 2;
                            }
                        });
                    }
                });
                rates[side].push(answered.load(Ordering::Relaxed) as f64 / 3.0);
            }
        }
        // Lag: from an answer to the next ask leaving its shows out.
        let mut lags = Vec::new();
        for (n, u) in users.iter().take(200).enumerate() {
            let ask = Ask::new(Scenario::Trending)
                .user(format!("lag-{n}-{u}"))
                .slot("home")
                .k(5)
                .not_shown_within(DAY);
            let first = store.serve(&ask).expect("serve");
            let t = Instant::now();
            let probe = Ask {
                slot: None,
                ..ask.clone()
            };
            loop {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "an answer's shows were not recorded within 10 s: {:?}",
                    store.stats().served_impressions
                );
                let again = store.serve(&probe).expect("probe");
                if again
                    .items
                    .iter()
                    .all(|r| !first.items.iter().any(|f| f.id == r.id))
                {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            lags.push(t.elapsed().as_secs_f64() * 1e3);
        }
        stop.store(true, Ordering::Relaxed);
        let c = store.stats().served_impressions;
        println!("| for-user, k = 10, 2 threads, 1,000 views / 10 ms flowing | answers/s (median of 5 × 3 s) |");
        println!("|---|---|");
        println!(
            "| no slot: nothing recorded (baseline) | {:.0} |",
            median(rates[0].clone())
        );
        println!(
            "| slot and user: each answer recorded | {:.0} |",
            median(rates[1].clone())
        );
        println!();
        println!(
            "rounds (answers/s): baseline {:.0?}, recording {:.0?}",
            rates[0], rates[1]
        );
        println!(
            "recorder: {} queued, {} recorded, {} dropped, {} failed",
            c.queued, c.recorded, c.dropped, c.failed
        );
        println!(
            "answer → shows left out of the next ask: median {:.2} ms, max {:.2} ms over {} probes",
            median(lags.clone()),
            lags.iter().cloned().fold(0.0, f64::max),
            lags.len()
        );
    });
}
