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

/// Run the queries on `threads` threads and measure each.
pub fn run(store: &Store, o: &SizingOptions) -> Result<SizingReport> {
    if o.queries == 0 || o.threads == 0 {
        return Err(Error::InvalidQuery {
            reason: "--queries and --threads must be at least 1".into(),
        });
    }
    let jobs = jobs(store, o)?;
    let threads = o.threads.min(jobs.len());
    let chunk = jobs.len().div_ceil(threads);
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
                            Job::UsersLike(u) => store.users_like(u, o.k).map(|r| r.len()),
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
    let errors: Vec<&String> = results.iter().flat_map(|r| r.2.iter()).collect();
    Ok(SizingReport {
        scenario: o.scenario.clone(),
        queries: times.len(),
        threads,
        k: o.k,
        p50_us: pct(&times, 0.5),
        p90_us: pct(&times, 0.9),
        p99_us: pct(&times, 0.99),
        max_us: times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        qps: times.len() as f64 / seconds.max(1e-9),
        empty: results.iter().map(|r| r.1).sum(),
        errors: errors.len(),
        first_error: errors.first().map(|e| e.to_string()),
        seconds,
    })
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
        };
        let draw = |seed| format!("{:?}", jobs(&store, &opts(seed)).expect("jobs"));
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
