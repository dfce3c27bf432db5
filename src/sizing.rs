//! `recostore bench`: run many queries of one scenario against an existing store, in this
//! process, and report latency percentiles and throughput, so an operator can size hardware
//! on their own data.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::scenario::{Ask, Scenario};
use crate::store::Store;

/// The scenarios `recostore bench` can run, and the subject each draws.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("similar", "an item"),
    ("together", "an item with activity"),
    ("substitutes", "an item with activity"),
    ("complements", "an item with activity"),
    ("viewed", "an item with activity"),
    ("cart", "three items with activity"),
    ("for-user", "a user with activity"),
    ("after-purchase", "a user with activity"),
    ("users-like", "a user"),
    ("trending", "nothing"),
    ("search-rerank", "a list of 50 items"),
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SizingOptions {
    /// A name from [`SCENARIOS`].
    pub scenario: String,
    /// Queries in all.
    pub queries: usize,
    /// Threads issuing them (each takes an equal share).
    pub threads: usize,
    /// Results per query.
    pub k: usize,
    /// Seed for drawing subjects: the same seed, store and options give the same queries.
    pub seed: u64,
    /// Record updates per second to write on another thread while the queries run a second
    /// time (0: none). 80% change stock and price only, 20% change one tag's weight. Every
    /// record changed is written back as it was when the run ends.
    pub writes_per_sec: u32,
}

/// The same queries again while another thread writes ([`SizingOptions::writes_per_sec`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnderWrites {
    /// Updates per second asked for.
    pub writes_per_sec: u32,
    /// Stock and price updates written.
    pub attribute_writes: u64,
    /// Tag-weight updates written.
    pub tag_writes: u64,
    /// Writes that failed (the first error is in `first_error`).
    pub write_errors: u64,
    /// The first write error, if any.
    pub first_error: Option<String>,
    /// Median query latency while writing, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest query, µs.
    pub max_us: f64,
    /// Queries per second while writing.
    pub qps: f64,
    /// Wall time of the queries while writing, seconds.
    pub seconds: f64,
    /// Records the delta re-indexes when the queries ended (`Stats::delta_records`).
    pub delta_records: usize,
    /// Attribute-only records in the delta when the queries ended.
    pub attribute_overlay: usize,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizingReport {
    /// The scenario.
    pub scenario: String,
    /// Queries run.
    pub queries: usize,
    /// Threads used.
    pub threads: usize,
    /// Results per query asked for.
    pub k: usize,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest query, µs.
    pub max_us: f64,
    /// Queries per second over the whole run (all threads).
    pub qps: f64,
    /// Queries that returned no result (a subject with no history, say).
    pub empty: usize,
    /// Queries that failed (the first error is in `first_error`).
    pub errors: usize,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// The second pass, under writes, when [`SizingOptions::writes_per_sec`] is above 0.
    pub under_writes: Option<UnderWrites>,
}

#[derive(Debug)]
enum Job {
    Ask(Box<Ask>),
    UsersLike(String),
}

fn pick(rng: &mut ChaCha8Rng, pool: &[String]) -> Result<String> {
    pool.choose(rng)
        .cloned()
        .ok_or_else(|| Error::InvalidQuery {
            reason: "the store has nothing to draw query subjects from for this scenario; \
                 import data (and events) first"
                .into(),
        })
}

/// Draw `n` queries of `scenario` deterministically from the store's items and users.
fn jobs(store: &Store, o: &SizingOptions) -> Result<Vec<Job>> {
    let snap = store.snapshot();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    // Ids are sorted before naming (the activity maps iterate in hash order), so the same
    // seed draws the same subjects.
    let named =
        |mut ids: Vec<u32>, live: &dyn Fn(u32) -> bool, name: &dyn Fn(u32) -> Option<String>| {
            ids.sort_unstable();
            ids.into_iter()
                .filter(|&i| live(i))
                .filter_map(name)
                .collect::<Vec<String>>()
        };
    let item_live = |i: u32| snap.item_row(i).is_some();
    let user_live = |u: u32| snap.user_row(u).is_some();
    let item_name = |i: u32| snap.item_name(i);
    let user_name = |u: u32| snap.user_name(u);
    let items = named((0..snap.item_id_bound()).collect(), &item_live, &item_name);
    let active_items = named(
        snap.activity.items().map(|(i, _)| i).collect(),
        &item_live,
        &item_name,
    );
    let users = named((0..snap.user_id_bound()).collect(), &user_live, &user_name);
    let active_users = named(
        snap.activity.users().map(|(u, _)| u).collect(),
        &user_live,
        &user_name,
    );
    let mut out = Vec::with_capacity(o.queries);
    for _ in 0..o.queries {
        let ask = |s: Scenario| Job::Ask(Box::new(Ask::new(s).k(o.k)));
        let job = match o.scenario.as_str() {
            "similar" => ask(Scenario::Similar {
                item: pick(&mut rng, &items)?,
            }),
            "together" => ask(Scenario::Together {
                item: pick(&mut rng, &active_items)?,
            }),
            "viewed" => ask(Scenario::Viewed {
                item: pick(&mut rng, &active_items)?,
            }),
            "substitutes" => ask(Scenario::Substitutes {
                item: pick(&mut rng, &active_items)?,
            }),
            "complements" => ask(Scenario::Complements {
                item: pick(&mut rng, &active_items)?,
            }),
            "cart" => ask(Scenario::Cart {
                items: (0..3)
                    .map(|_| pick(&mut rng, &active_items))
                    .collect::<Result<_>>()?,
            }),
            "for-user" => Job::Ask(Box::new(
                Ask::new(Scenario::ForUser)
                    .k(o.k)
                    .user(pick(&mut rng, &active_users)?),
            )),
            "after-purchase" => Job::Ask(Box::new(
                Ask::new(Scenario::AfterPurchase)
                    .k(o.k)
                    .user(pick(&mut rng, &active_users)?),
            )),
            "users-like" => Job::UsersLike(pick(&mut rng, &users)?),
            "trending" => ask(Scenario::Trending),
            "search-rerank" => {
                let n = rng.gen_range(20..=50).min(items.len());
                let mut list: Vec<String> = items.choose_multiple(&mut rng, n).cloned().collect();
                list.sort();
                ask(Scenario::SearchRerank {
                    items: list,
                    keywords: Vec::new(),
                })
            }
            other => {
                return Err(Error::InvalidQuery {
                    reason: format!(
                        "unknown scenario `{other}`; bench runs {}",
                        SCENARIOS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        };
        out.push(job);
    }
    Ok(out)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a float-to-int cast saturates; clamped to [1, len]"
    )]
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// Latencies and outcomes of one pass over the jobs.
struct Pass {
    times: Vec<Duration>,
    empty: usize,
    errors: Vec<String>,
    threads: usize,
    seconds: f64,
}

/// Run the jobs on `threads` threads and measure each.
fn pass(store: &Store, jobs: &[Job], threads: usize, k: usize) -> Pass {
    let threads = threads.min(jobs.len()).max(1);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, usize, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut times = Vec::with_capacity(part.len());
                    let (mut empty, mut errors) = (0, Vec::new());
                    for job in part {
                        let t = Instant::now();
                        let n = match job {
                            Job::Ask(a) => store.recommend(a).map(|r| r.len()),
                            Job::UsersLike(u) => store.users_like(u, k).map(|r| r.len()),
                        };
                        times.push(t.elapsed());
                        match n {
                            Ok(0) => empty += 1,
                            Ok(_) => {}
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    (times, empty, errors)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut times: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    times.sort_unstable();
    Pass {
        times,
        empty: results.iter().map(|r| r.1).sum(),
        errors: results.into_iter().flat_map(|r| r.2).collect(),
        threads,
        seconds,
    }
}

/// What the writer thread did.
#[derive(Default)]
struct Written {
    attribute: u64,
    tags: u64,
    errors: u64,
    first_error: Option<String>,
    /// Each changed item as it was before its first change, to write back.
    originals: std::collections::HashMap<String, crate::model::Item>,
}

/// Write `per_sec` updates per second to items drawn from `pool` until `stop` is set: 80%
/// stock and price, 20% one tag's weight scaled, each a single-record write as a shop's
/// stock feed sends them.
fn write_load(
    store: &Store,
    pool: &[String],
    per_sec: u32,
    seed: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> Written {
    use std::sync::atomic::Ordering;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5752_4954_4553);
    let mut w = Written::default();
    let started = Instant::now();
    let mut done: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        // Writes due by now: elapsed µs × rate / 10⁶, in integers (no float-to-int cast).
        let due = crate::narrow::u64_from(
            started.elapsed().as_micros() * u128::from(per_sec) / 1_000_000,
        );
        if done >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        done += 1;
        let Some(name) = pool.choose(&mut rng) else {
            break;
        };
        let Some(mut item) = store.get_item(name) else {
            continue;
        };
        w.originals
            .entry(name.clone())
            .or_insert_with(|| item.clone());
        let retag = rng.gen_bool(0.2) && !item.tags.is_empty();
        if retag {
            let i = rng.gen_range(0..item.tags.len());
            item.tags[i].1 = (item.tags[i].1 * rng.gen_range(0.5f32..1.5)).max(1e-3);
        } else {
            item.stock = rng.gen_range(0..100);
            item.price = (item.price * rng.gen_range(0.9f32..1.1)).max(0.0);
        }
        match store.upsert_item(&item) {
            Ok(()) if retag => w.tags += 1,
            Ok(()) => w.attribute += 1,
            Err(e) => {
                w.errors += 1;
                w.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    w
}

/// Run the queries on `threads` threads and measure each; with
/// [`SizingOptions::writes_per_sec`], run them again while another thread writes, and write
/// every changed record back as it was.
pub fn run(store: &Store, o: &SizingOptions) -> Result<SizingReport> {
    if o.queries == 0 || o.threads == 0 {
        return Err(Error::InvalidQuery {
            reason: "--queries and --threads must be at least 1".into(),
        });
    }
    let jobs = jobs(store, o)?;
    let quiet = pass(store, &jobs, o.threads, o.k);
    let under_writes = if o.writes_per_sec > 0 {
        let pool = item_names(store);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (busy, written) = std::thread::scope(|s| {
            let writer = s.spawn(|| write_load(store, &pool, o.writes_per_sec, o.seed, &stop));
            let busy = pass(store, &jobs, o.threads, o.k);
            stop.store(true, std::sync::atomic::Ordering::Release);
            (busy, writer.join())
        });
        // The writer only calls the store's API; a panic there is a bug, so it goes on up.
        let written = written.unwrap_or_else(|p| std::panic::resume_unwind(p));
        let stats = store.stats();
        let originals: Vec<crate::model::Item> = written.originals.into_values().collect();
        store.upsert_items(&originals)?;
        Some(UnderWrites {
            writes_per_sec: o.writes_per_sec,
            attribute_writes: written.attribute,
            tag_writes: written.tags,
            write_errors: written.errors,
            first_error: written.first_error,
            p50_us: pct(&busy.times, 0.5),
            p90_us: pct(&busy.times, 0.9),
            p99_us: pct(&busy.times, 0.99),
            max_us: busy.times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
            qps: busy.times.len() as f64 / busy.seconds.max(1e-9),
            seconds: busy.seconds,
            delta_records: stats.delta_records,
            attribute_overlay: stats.attribute_overlay,
        })
    } else {
        None
    };
    let times = &quiet.times;
    Ok(SizingReport {
        scenario: o.scenario.clone(),
        queries: times.len(),
        threads: quiet.threads,
        k: o.k,
        p50_us: pct(times, 0.5),
        p90_us: pct(times, 0.9),
        p99_us: pct(times, 0.99),
        max_us: times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        qps: times.len() as f64 / quiet.seconds.max(1e-9),
        empty: quiet.empty,
        errors: quiet.errors.len(),
        first_error: quiet.errors.first().cloned(),
        seconds: quiet.seconds,
        under_writes,
    })
}

/// Names of the live items, in id order.
fn item_names(store: &Store) -> Vec<String> {
    let snap = store.snapshot();
    (0..snap.item_id_bound())
        .filter_map(|i| snap.item_name(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Item};

    #[test]
    fn the_same_seed_draws_the_same_queries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let items: Vec<Item> = (0..50)
            .map(|i| Item::new(format!("i{i}"), [("t", 1.0)]))
            .collect();
        store.upsert_items(&items).expect("items");
        let events: Vec<Event> = (0..200u64)
            .map(|n| Event::view(format!("u{}", n % 20), format!("i{}", n % 50), 1 + n))
            .collect();
        store.record_events(&events).expect("events");
        let opts = |seed| SizingOptions {
            scenario: "for-user".into(),
            queries: 30,
            threads: 1,
            k: 5,
            seed,
            writes_per_sec: 0,
        };
        let draw = |seed| format!("{:?}", jobs(&store, &opts(seed)).expect("jobs"));
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
