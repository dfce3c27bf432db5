//! Replay: would a candidate strategy have done better on the store's own history?
//!
//! **Split.** One cut in time, `T`, for everybody: the events before `T` are replayed into a
//! training state (the way [`super::evaluate`] builds one), and what each user did at or after
//! `T` is what the answers are scored against. By default `T` is the time before which 80% of
//! the logged interest events fall; [`Split::At`] and [`Split::Last`] set it. A user is asked
//! for when they have a training item and at least one *new* item after `T` (one they had not
//! touched before it: interest events count, searches and impressions do not). The catalogue
//! is the store's as it is now, for both sides alike. As in [`super::evaluate`], the asked
//! users are shown without their explicit tags, which an importer may have summarised from
//! the whole history, the part after the cut included: only the replayed events speak for
//! them.
//!
//! **Asks.** The candidate and the current strategy (the built-in ranker or a loaded plugin)
//! rank the same ask for every user: the scenario, `k`, the user, `exclude_seen`. Both run in
//! a private plugin registry of this replay, so the thousands of calls (and any faults) never
//! reach the serving versions' counters or their auto-disable, and no A/B slot counts them.
//!
//! **Figures.** Per side: recall@k, NDCG@k (binary gains) and coverage (distinct recommended
//! items over live items), and the answers that fell back to the built-in ranker after a
//! fault. The difference is candidate minus current. Recall and NDCG differences carry a
//! paired bootstrap interval over users (the same resampled users for both sides; percentile
//! method, a fixed seed so a run repeats). Coverage gets none: it counts distinct items over
//! all answers, and a resample with repeated users holds fewer of them, so the interval would
//! be biased low. `changed` is the mean share of a candidate answer's items that the current
//! answer does not hold.
//!
//! **While the store serves.** The log is read by a scan that writes do not wait for, and the
//! catalogue from one snapshot. Events recorded while the scan runs may or may not be read;
//! a replay is a measurement of the history up to its start, not of a frozen instant.

use std::collections::HashSet;

use serde::Serialize;

use super::{cart_of, histories, score_list, training_snapshot, History, Training};
use crate::error::{Error, Result};
use crate::plugin::Plugins;
use crate::progress::{Meter, Progress};
use crate::scenario::{Ask, Derivations, Env, Scenario};
use crate::splitmix::SplitMix64;
use crate::store::Store;

/// The share of the log's interest events (anything but searches and impressions) that falls
/// after the default cut.
const DEFAULT_TEST_SHARE: f64 = 0.2;

/// Most bootstrap resamples (each costs a pass over the evaluated users).
pub const MAX_RESAMPLES: usize = 100_000;

/// Most users × resamples: a bound on what one replay can make the serving process do
/// (about 5 s of bootstrap on one core).
pub const MAX_BOOTSTRAP_DRAWS: usize = 500_000_000;

/// The name the candidate has in the replay's private registry.
const CANDIDATE: &str = "candidate";
/// The name the current plugin's copy has there.
const CURRENT: &str = "current";

/// Where the history is cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// Before the latest `share` (0 < share < 1) of the logged interest events.
    Share(f64),
    /// At this event time (seconds, as events carry them).
    At(u64),
    /// This many seconds before the newest logged interest event (anything but a search or
    /// an impression: views, clicks, favourites, carts, purchases, ratings, reviews).
    Last(u64),
}

impl Default for Split {
    fn default() -> Self {
        Split::Share(DEFAULT_TEST_SHARE)
    }
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// `for-user` or `cart` (the cart is the user's last five training items).
    pub scenario: String,
    /// Recommendations per ask.
    pub k: usize,
    /// Where the history is cut.
    pub split: Split,
    /// The strategy the candidate is compared with: `builtin` or a loaded plugin's name.
    pub against: String,
    /// Bootstrap resamples for the intervals (100 to [`MAX_RESAMPLES`]).
    pub resamples: usize,
    /// Reports stage `"replay"` (training events applied) and `"asks"` (users asked).
    pub progress: Option<Progress>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            scenario: "for-user".into(),
            k: 10,
            split: Split::default(),
            against: crate::plugin::slots::BUILTIN.into(),
            resamples: 1000,
            progress: None,
        }
    }
}

/// One strategy's figures in a replay.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplaySide {
    /// `candidate`, or what it was compared with: `builtin` or the plugin's name.
    pub strategy: String,
    /// Mean recall@k over the users asked.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Distinct recommended items / live items.
    pub coverage: f64,
    /// Answers ranked by the built-in ranker instead, after a fault of the plugin (or because
    /// repeated faults disabled it in the replay's registry).
    pub fallbacks: u64,
}

/// A difference with its bootstrap interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    /// Candidate minus current, on all users.
    pub value: f64,
    /// The interval's lower end.
    pub low: f64,
    /// Its upper end.
    pub high: f64,
}

/// Candidate minus current.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayDifference {
    /// Recall@k.
    pub recall: Interval,
    /// NDCG@k.
    pub ndcg: Interval,
    /// Coverage, without an interval: it is a property of the whole set of answers, and a
    /// bootstrap resample (users drawn with repeats, about 63% of them distinct) shrinks it,
    /// so its percentile interval would sit off the value.
    pub coverage: f64,
    /// Mean share of a candidate answer's items that the current answer does not hold.
    pub changed: f64,
    /// The intervals' confidence (0.95).
    pub confidence: f64,
    /// Bootstrap resamples behind them.
    pub resamples: usize,
}

/// The result of a replay: `{"candidate": {...}, "current": {...}, "difference": {...}}` and
/// what it was measured on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayReport {
    /// The candidate's figures.
    pub candidate: ReplaySide,
    /// The current strategy's.
    pub current: ReplaySide,
    /// Candidate minus current.
    pub difference: ReplayDifference,
    /// The scenario asked.
    pub scenario: String,
    /// k.
    pub k: usize,
    /// The cut: events before it trained, events at or after it were scored against.
    pub since: u64,
    /// Users asked (a training item and a new item after the cut).
    pub users: usize,
    /// Events replayed into the training state.
    pub train_events: u64,
    /// (user, new item) pairs after the cut that the answers were scored against.
    pub test_items: u64,
    /// Seconds the whole replay took.
    pub seconds: f64,
}

/// Replay `wasm` (with `config`, as [`Plugins::load_with_config`] takes it) against
/// `opts.against` on `store`'s own history. See the module docs for the method.
///
/// Errors: [`Error::InvalidQuery`] for options out of range or a history with nobody to
/// score; [`Error::PluginRejected`] when the module does not load;
/// [`Error::PluginNotFound`] when `against` names no loaded plugin.
pub fn replay(
    store: &Store,
    wasm: &[u8],
    config: &[u8],
    opts: &ReplayOptions,
) -> Result<ReplayReport> {
    let started = std::time::Instant::now();
    let bad = |reason: String| Error::InvalidQuery { reason };
    let scenario = opts.scenario.as_str();
    if !["for-user", "cart"].contains(&scenario) {
        return Err(bad(format!(
            "replay asks the scenarios for-user and cart, not `{scenario}`"
        )));
    }
    if opts.k == 0 || opts.k > crate::search::MAX_K {
        return Err(bad(format!(
            "k {} must be between 1 and {}",
            opts.k,
            crate::search::MAX_K
        )));
    }
    if !(100..=MAX_RESAMPLES).contains(&opts.resamples) {
        return Err(bad(format!(
            "resamples {} must be between 100 and {MAX_RESAMPLES}",
            opts.resamples
        )));
    }
    if let Split::Share(s) = opts.split {
        if !(s > 0.0 && s < 1.0) {
            return Err(bad(format!("the test share {s} must be between 0 and 1")));
        }
    }

    // The private registry: the candidate, and a copy of the current plugin if one is named.
    let plugins = Plugins::new(store.plugins().limits().clone());
    plugins.load_transient(CANDIDATE, wasm, config)?;
    let current = if opts.against == crate::plugin::slots::BUILTIN {
        None
    } else {
        if let Some(why) = store.plugins().info(&opts.against)?.disabled {
            return Err(bad(format!(
                "`{}` is disabled ({why}), so the built-in ranker serves its queries: compare \
                 with `builtin`, or enable it first",
                opts.against
            )));
        }
        let (w, c) = store.plugins().source_of(&opts.against)?;
        plugins.load_transient(CURRENT, &w, &c)?;
        Some(CURRENT)
    };

    let base = store.snapshot();
    let users = histories(store, &base)?;
    let cut = cut(&users, opts.split)?;

    // Per user: the training events, and the new items after the cut.
    struct Split1 {
        train_len: usize,
        test: HashSet<u32>,
        trained_item: bool,
    }
    let mut splits = Vec::with_capacity(users.len());
    let (mut train_events, mut test_items) = (0u64, 0u64);
    for (_, _, evs) in &users {
        let train_len = evs.partition_point(|(ts, _)| *ts < cut);
        // Interest (views, clicks, purchases) only: an item merely shown before the cut was
        // not touched, and stays new after it.
        let before: HashSet<u32> = evs[..train_len]
            .iter()
            .filter(|(_, e)| e.kind.is_interest())
            .filter_map(|(_, e)| e.item)
            .collect();
        let test: HashSet<u32> = evs[train_len..]
            .iter()
            .filter(|(_, e)| e.kind.is_interest())
            .filter_map(|(_, e)| e.item)
            .filter(|i| !before.contains(i))
            .collect();
        train_events += train_len as u64;
        let trained_item = !before.is_empty();
        if trained_item {
            test_items += test.len() as u64;
        }
        splits.push(Split1 {
            train_len,
            test,
            trained_item,
        });
    }
    let asked: Vec<usize> = (0..users.len())
        .filter(|&i| splits[i].trained_item && !splits[i].test.is_empty())
        .collect();
    if asked.is_empty() {
        return Err(bad(format!(
            "nobody both did something before {cut} and touched a new item at or after it, so \
             there is nothing to score; cut earlier (the log runs from {} to {})",
            users
                .iter()
                .filter_map(|(_, _, e)| e.first())
                .map(|(t, _)| *t)
                .min()
                .unwrap_or(0),
            users
                .iter()
                .filter_map(|(_, _, e)| e.last())
                .map(|(t, _)| *t)
                .max()
                .unwrap_or(0),
        )));
    }

    if asked.len().saturating_mul(opts.resamples) > MAX_BOOTSTRAP_DRAWS {
        let most = MAX_BOOTSTRAP_DRAWS / asked.len();
        return Err(bad(if most >= 100 {
            format!(
                "{} users × {} resamples is more than {MAX_BOOTSTRAP_DRAWS} bootstrap draws; ask \
                 for at most {most} resamples",
                asked.len(),
                opts.resamples
            )
        } else {
            format!(
                "{} users are more than a replay resamples ({} at 100 resamples); cut later \
                 (a later cut asks fewer users)",
                asked.len(),
                MAX_BOOTSTRAP_DRAWS / 100
            )
        }));
    }
    let replay_meter = Meter::new(opts.progress.as_ref(), "replay", train_events);
    let training: Vec<Training<'_>> = users
        .iter()
        .zip(&splits)
        .map(|((u, name, evs), sp)| Training {
            user: *u,
            name,
            events: &evs[..sp.train_len],
            hide_tags: sp.trained_item && !sp.test.is_empty(),
        })
        .collect();
    let snap = training_snapshot(store, &base, &training);
    replay_meter.add(train_events);
    replay_meter.finish();

    let derived = Derivations::default();
    let env = Env {
        config: store.config(),
        plugins: &plugins,
        derived: &derived,
        shadow: false,
        shown: None,
    };
    let asks_meter = Meter::new(opts.progress.as_ref(), "asks", asked.len() as u64);
    // Per asked user: (recall, ndcg) of each side, the changed share, and each side's answer.
    let mut rows: Vec<Row> = Vec::with_capacity(asked.len());
    let mut fallbacks = [0u64; 2];
    let mut covered: [HashSet<u32>; 2] = Default::default();
    for &i in &asked {
        let (u, name, _) = &users[i];
        let scenario = match scenario {
            "cart" => Scenario::Cart {
                items: cart_of(&snap, *u),
            },
            _ => Scenario::ForUser,
        };
        let ask = Ask::new(scenario)
            .user(name.clone())
            .k(opts.k)
            .exclude_seen();
        let mut lists: [Vec<u32>; 2] = Default::default();
        for (side, strategy) in [Some(CANDIDATE), current].into_iter().enumerate() {
            let ask = match strategy {
                Some(s) => ask.clone().strategy(s),
                None => ask.clone(),
            };
            let served = crate::scenario::run(&env, &snap, &ask)?;
            if served.ranked_by.fallback.is_some() {
                fallbacks[side] += 1;
            }
            lists[side] = served
                .items
                .iter()
                .filter_map(|r| snap.item_id(&r.id))
                .collect();
        }
        let test = &splits[i].test;
        let [cand, cur] = &lists;
        let (a, b) = (
            score_list(cand, test, opts.k),
            score_list(cur, test, opts.k),
        );
        let held: HashSet<u32> = cur.iter().copied().collect();
        let changed = if cand.is_empty() {
            0.0
        } else {
            cand.iter().filter(|i| !held.contains(i)).count() as f64 / cand.len() as f64
        };
        for (seen, list) in covered.iter_mut().zip(&lists) {
            seen.extend(list.iter().copied());
        }
        rows.push(Row {
            recall: [a.recall, b.recall],
            ndcg: [a.ndcg, b.ndcg],
            changed,
        });
        asks_meter.add(1);
    }
    asks_meter.finish();

    let live = base.live_items().max(1) as f64;
    let all: Vec<usize> = (0..rows.len()).collect();
    let point = figures(&rows, &all);
    let coverage = covered.map(|c| c.len() as f64 / live);
    let boot = bootstrap(&rows, opts.resamples);
    let interval = |f: fn(&Figures) -> f64| {
        let mut d: Vec<f64> = boot.iter().map(f).collect();
        d.sort_by(f64::total_cmp);
        Interval {
            value: f(&point),
            low: percentile(&d, 0.025),
            high: percentile(&d, 0.975),
        }
    };
    let side = |s: usize, strategy: &str| ReplaySide {
        strategy: strategy.to_string(),
        recall: point.recall[s],
        ndcg: point.ndcg[s],
        coverage: coverage[s],
        fallbacks: fallbacks[s],
    };
    Ok(ReplayReport {
        candidate: side(0, CANDIDATE),
        current: side(1, &opts.against),
        difference: ReplayDifference {
            recall: interval(|f| f.recall[0] - f.recall[1]),
            ndcg: interval(|f| f.ndcg[0] - f.ndcg[1]),
            coverage: coverage[0] - coverage[1],
            changed: rows.iter().map(|r| r.changed).sum::<f64>() / rows.len() as f64,
            confidence: 0.95,
            resamples: opts.resamples,
        },
        scenario: opts.scenario.clone(),
        k: opts.k,
        since: cut,
        users: rows.len(),
        train_events,
        test_items,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The cut in time for `split` over the users' histories.
fn cut(users: &[History], split: Split) -> Result<u64> {
    let mut times: Vec<u64> = users
        .iter()
        .flat_map(|(_, _, evs)| evs.iter())
        .filter(|(_, e)| e.kind.is_interest() && e.item.is_some())
        .map(|(t, _)| *t)
        .collect();
    if times.is_empty() {
        return Err(Error::InvalidQuery {
            reason: "the store has no logged views, clicks or purchases to replay; record or \
                     import events first"
                .into(),
        });
    }
    times.sort_unstable();
    Ok(match split {
        Split::At(t) => t,
        Split::Last(secs) => times[times.len() - 1].saturating_sub(secs),
        Split::Share(share) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "share is in (0, 1), so the index is within the list"
            )]
            let at = ((times.len() as f64) * (1.0 - share)).floor() as usize;
            times[at.min(times.len() - 1)]
        }
    })
}

/// One asked user's outcome, candidate first.
struct Row {
    recall: [f64; 2],
    ndcg: [f64; 2],
    changed: f64,
}

/// Means over a sample of rows, candidate first.
struct Figures {
    recall: [f64; 2],
    ndcg: [f64; 2],
}

/// The figures of the rows at `sample` (indices, repeats allowed).
fn figures(rows: &[Row], sample: &[usize]) -> Figures {
    let n = sample.len().max(1) as f64;
    let mut f = Figures {
        recall: [0.0; 2],
        ndcg: [0.0; 2],
    };
    for &i in sample {
        let r = &rows[i];
        for (sum, x) in f.recall.iter_mut().zip(r.recall) {
            *sum += x;
        }
        for (sum, x) in f.ndcg.iter_mut().zip(r.ndcg) {
            *sum += x;
        }
    }
    for x in f.recall.iter_mut().chain(f.ndcg.iter_mut()) {
        *x /= n;
    }
    f
}

/// `resamples` bootstrap samples of the rows (users drawn with replacement, the same users for
/// both sides), from a fixed seed.
fn bootstrap(rows: &[Row], resamples: usize) -> Vec<Figures> {
    let mut rng = SplitMix64(0x7265_706c_6179);
    let n = rows.len();
    let mut sample = vec![0usize; n];
    (0..resamples)
        .map(|_| {
            for s in &mut sample {
                *s = rng.below(n);
            }
            figures(rows, &sample)
        })
        .collect()
}

/// The `q` quantile of sorted `d` (nearest rank).
fn percentile(d: &[f64], q: f64) -> f64 {
    if d.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "q is in [0, 1], so the index is within the list"
    )]
    let at = ((d.len() - 1) as f64 * q).round() as usize;
    d[at.min(d.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(percentile(&d, 0.025), 25.0);
        assert_eq!(percentile(&d, 0.975), 974.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
