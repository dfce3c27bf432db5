//! Offline evaluation: hold out each user's latest interactions, replay the rest into a fresh
//! behaviour state, ask a scenario for every user, and score the answers against what they did
//! next.
//!
//! **Split.** Per user, the distinct items of interest events are ordered by first interaction;
//! the last `holdout` fraction (at least one, and never all) is the test set. Training keeps
//! only the user's events *before* the first test item's time, so nothing from the future
//! leaks. Users with fewer than two distinct items stay wholly in training.
//!
//! **Leakage.** Explicit user tags written by an importer may summarise the whole history, so
//! evaluated users are shown to the scenario without explicit tags: only the replayed training
//! events speak for them.
//!
//! **Metrics** (averaged over users with a training and a test item; `T` the test set, `hits`
//! the recommended items in `T`): precision@k = hits/k; recall@k = hits/|T|; NDCG@k with binary
//! gains; MAP@k = Σ precision at each hit / min(k, |T|); coverage = distinct recommended items /
//! catalogue; novelty = mean −log2((n_i+1)/(U+1)) over recommendations, `n_i` the training
//! users of item i and `U` all training users. `bench/peers/implicit_peer.py` computes the same
//! on the same split (`--write-split`).
//!
//! [`replay`] compares two strategies on one cut in time of the same history.

pub mod replay;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::activity::ingest::Ingest;
use crate::activity::log::{self, Logged};
use crate::codec::StoredUser;
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::scenario::{Ask, Scenario};
use crate::snapshot::{Row, Snapshot};
use crate::store::Store;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// `for-user` or `cart` (the cart is the user's last five training items).
    pub scenario: String,
    /// Recommendations per user.
    pub k: usize,
    /// Fraction of each user's distinct items held out (0 < h < 1). Default 0.2.
    pub holdout: f32,
    /// Also write the split as `train.csv`, `test.csv` and `meta.json` here, for the peers.
    pub write_split: Option<PathBuf>,
}

/// The scores of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The scenario evaluated.
    pub scenario: String,
    /// k.
    pub k: usize,
    /// Users evaluated.
    pub users: usize,
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Mean MAP@k.
    pub map: f64,
    /// Distinct recommended items / live items.
    pub coverage: f64,
    /// Mean self-information of the recommendations (higher: less obvious).
    pub novelty: f64,
    /// Seconds to replay the training events.
    pub seconds_replay: f64,
    /// Seconds to answer every user.
    pub seconds_recommend: f64,
}

/// How many of the user's latest training items make up the `cart` evaluation's basket.
const CART_ITEMS: usize = 5;

struct UserSplit {
    name: String,
    train: Vec<(u64, StoredEvent)>,
    test: Vec<u32>,
}

/// The item tags an event passes on, for an existing store (no new tag ids): the replay's
/// side of the write path's tag passing.
fn passed_tags(snap: &Snapshot, item: u32) -> Vec<(u32, f32)> {
    let (tags, category, price) = match snap.item_row(item) {
        Some(Row::Delta(r)) => (r.tags.clone(), r.category.clone(), r.price),
        Some(Row::Segment(i)) => {
            let t = &snap.seg().items;
            let price = t.price.get(i as usize).map_or(0.0, |p| p.to_native());
            (t.forward.row_vec(i), t.category_of(i).to_string(), price)
        }
        None => return Vec::new(),
    };
    let named = |t: u32, prefix: &str| snap.tag_name(t).is_some_and(|n| n.starts_with(prefix));
    let found = crate::activity::user::passed_tags(tags, &category, price, named, |n| {
        Ok::<_, std::convert::Infallible>(snap.tag_id(n))
    });
    found.unwrap_or_else(|never| match never {})
}

fn split_user(name: String, events: Vec<(u64, StoredEvent)>, holdout: f32) -> UserSplit {
    let mut first: Vec<(u64, u32)> = Vec::new();
    let mut seen = HashSet::new();
    for (ts, e) in &events {
        if let Some(i) = e.item.filter(|_| e.kind.is_interest()) {
            if seen.insert(i) {
                first.push((*ts, i));
            }
        }
    }
    let n = first.len();
    if n < 2 {
        return UserSplit {
            name,
            train: events,
            test: Vec::new(),
        };
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a float-to-int cast saturates; clamped to [1, n - 1]"
    )]
    let hold = ((n as f32 * holdout).ceil() as usize).clamp(1, n - 1);
    let cutoff = first[n - hold].0;
    let train: Vec<(u64, StoredEvent)> = events.into_iter().filter(|(t, _)| *t < cutoff).collect();
    let train_items: HashSet<u32> = train.iter().filter_map(|(_, e)| e.item).collect();
    let test = first
        .iter()
        .filter(|(t, i)| *t >= cutoff && !train_items.contains(i))
        .map(|&(_, i)| i)
        .collect();
    UserSplit { name, train, test }
}

/// Run an offline evaluation of `opts.scenario` on `store`.
pub fn evaluate(store: &Store, opts: &EvalOptions) -> Result<EvalReport> {
    let bad = |reason: String| Error::InvalidQuery { reason };
    if !(opts.holdout > 0.0 && opts.holdout < 1.0) {
        return Err(bad(format!(
            "holdout {} must be between 0 and 1",
            opts.holdout
        )));
    }
    if !["for-user", "cart"].contains(&opts.scenario.as_str()) {
        return Err(bad(format!(
            "eval supports the scenarios for-user and cart, not `{}`",
            opts.scenario
        )));
    }
    let base = store.snapshot();
    let splits: Vec<(u32, UserSplit)> = histories(store, &base)?
        .into_iter()
        .map(|(u, name, evs)| (u, split_user(name, evs, opts.holdout)))
        .collect();
    if splits.is_empty() {
        return Err(bad(
            "the store has no events to evaluate on; record or import some first".into(),
        ));
    }

    // Replay every user's training events in global time order.
    let started = std::time::Instant::now();
    let training: Vec<Training<'_>> = splits
        .iter()
        .map(|(u, sp)| Training {
            user: *u,
            name: &sp.name,
            events: &sp.train,
            hide_tags: !sp.test.is_empty(),
        })
        .collect();
    let snap = training_snapshot(store, &base, &training);
    // The training state, asked through the store's configuration, plugins and kept relations.
    let view = store.view_of(snap.clone());
    let seconds_replay = started.elapsed().as_secs_f64();

    // Ask and score.
    let started = std::time::Instant::now();
    let train_users = splits.iter().filter(|(_, s)| !s.train.is_empty()).count() as f64;
    let mut item_users: HashMap<u32, u32> = HashMap::new();
    for (_, sp) in &splits {
        let items: HashSet<u32> = sp.train.iter().filter_map(|(_, e)| e.item).collect();
        for i in items {
            *item_users.entry(i).or_default() += 1;
        }
    }
    let k = opts.k.max(1);
    let (mut users, mut p, mut r, mut n, mut m, mut nov, mut recs_total) =
        (0usize, 0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
    let mut covered: HashSet<String> = HashSet::new();
    for (u, sp) in &splits {
        if sp.test.is_empty() || sp.train.iter().all(|(_, e)| e.item.is_none()) {
            continue;
        }
        let scenario = if opts.scenario == "cart" {
            Scenario::Cart {
                items: cart_of(&snap, *u),
            }
        } else {
            Scenario::ForUser
        };
        let ask = Ask::new(scenario).user(sp.name.clone()).k(k).exclude_seen();
        let recs = view.recommend(&ask)?;
        let test: HashSet<u32> = sp.test.iter().copied().collect();
        let ids: Vec<u32> = recs.iter().filter_map(|x| snap.item_id(&x.id)).collect();
        let scored = score_list(&ids, &test, k);
        for id in &ids {
            let n_i = f64::from(item_users.get(id).copied().unwrap_or(0));
            nov += -((n_i + 1.0) / (train_users + 1.0)).log2();
            recs_total += 1;
        }
        let hits = scored.hits;
        users += 1;
        p += hits as f64 / k as f64;
        r += scored.recall;
        n += scored.ndcg;
        m += scored.map;
        covered.extend(recs.into_iter().map(|x| x.id));
    }
    if let Some(dir) = &opts.write_split {
        write_split(dir, &base, &splits, k)?;
    }
    let per = |x: f64| if users == 0 { 0.0 } else { x / users as f64 };
    Ok(EvalReport {
        scenario: opts.scenario.clone(),
        k,
        users,
        precision: per(p),
        recall: per(r),
        ndcg: per(n),
        map: per(m),
        coverage: covered.len() as f64 / base.live_items().max(1) as f64,
        novelty: if recs_total == 0 {
            0.0
        } else {
            nov / recs_total as f64
        },
        seconds_replay,
        seconds_recommend: started.elapsed().as_secs_f64(),
    })
}

/// A user's id, name and logged events (time, event) in the user's own order.
pub(crate) type History = (u32, String, Vec<(u64, StoredEvent)>);

/// Every user's logged events in the user's own time order, with the user's name, read from
/// the log while the store serves (a scan: writes go on). Users `base` does not know (written
/// after it was taken) are left out.
pub(crate) fn histories(store: &Store, base: &Snapshot) -> Result<Vec<History>> {
    // The log is keyed by user first: one pass yields each user's history, sorted on flush.
    let mut out = Vec::new();
    let mut current: Option<(u32, Vec<Logged>)> = None;
    let flush = |cur: Option<(u32, Vec<Logged>)>, out: &mut Vec<_>| {
        if let Some((u, mut evs)) = cur {
            if let Some(name) = base.user_name(u) {
                log::sort_history(&mut evs);
                let evs = evs.into_iter().map(|l| (l.ts, l.event)).collect();
                out.push((u, name, evs));
            }
        }
    };
    for kv in store.tree().scan_prefix(log::LOG_PREFIX) {
        let (k, v) = kv?;
        let (user, chunk) = log::decode_entry(&k, &v)?;
        if current.as_ref().is_some_and(|(u, _)| *u != user) {
            flush(current.take(), &mut out);
        }
        current
            .get_or_insert_with(|| (user, Vec::new()))
            .1
            .extend(chunk);
    }
    flush(current.take(), &mut out);
    Ok(out)
}

/// One user's share of a training state.
pub(crate) struct Training<'a> {
    pub user: u32,
    pub name: &'a str,
    /// The events replayed, in the user's time order.
    pub events: &'a [(u64, StoredEvent)],
    /// Show the user without explicit tags (an evaluated user; see the module docs).
    pub hide_tags: bool,
}

/// `base`'s catalogue with a behaviour state made only of `users`' training events, replayed
/// in global time order the way the write path applies them.
pub(crate) fn training_snapshot(
    store: &Store,
    base: &Arc<Snapshot>,
    users: &[Training<'_>],
) -> Arc<Snapshot> {
    // (ts, user, index in `users`, event index): sorting by the tuple keeps each user's order.
    let mut order: Vec<(u64, u32, usize, usize)> = users
        .iter()
        .enumerate()
        .flat_map(|(s, t)| {
            t.events
                .iter()
                .enumerate()
                .map(move |(i, (ts, _))| (*ts, t.user, s, i))
        })
        .collect();
    order.sort_unstable();
    let mut ingest = Ingest::new(&Default::default(), store.config());
    let mut tag_cache: HashMap<u32, Arc<Vec<(u32, f32)>>> = HashMap::new();
    for &(ts, user, s, i) in &order {
        let e = &users[s].events[i].1;
        let tags = match e.item.filter(|_| e.kind.is_interest()) {
            Some(item) => tag_cache
                .entry(item)
                .or_insert_with(|| Arc::new(passed_tags(base, item)))
                .clone(),
            None => Arc::default(),
        };
        ingest.apply(user, ts, e, &tags);
    }
    let mut delta = base.delta.clone();
    for t in users.iter().filter(|t| t.hide_tags) {
        let row = StoredUser {
            name: t.name.to_string(),
            tags: Vec::new(),
            recent: Vec::new(),
        };
        delta.put_user(t.user, base.seq, Some(Arc::new(row)));
    }
    Arc::new(Snapshot {
        segment: base.segment.clone(),
        delta,
        seq: base.seq,
        activity: ingest.act,
    })
}

/// The basket the `cart` evaluation asks with: the user's latest training items.
pub(crate) fn cart_of(snap: &Snapshot, user: u32) -> Vec<String> {
    snap.activity
        .user(user)
        .map(|s| {
            s.recent
                .iter()
                .rev()
                .take(CART_ITEMS)
                .filter_map(|&(i, _)| snap.item_name(i))
                .collect()
        })
        .unwrap_or_default()
}

/// How one answer did against what the user did next.
pub(crate) struct ListScore {
    /// Recommended items in the test set.
    pub hits: usize,
    /// hits / |test|.
    pub recall: f64,
    /// DCG with binary gains over the ideal DCG of min(k, |test|) hits.
    pub ndcg: f64,
    /// Σ precision at each hit / min(k, |test|).
    pub map: f64,
}

/// Score the answer `ids` (best first) against the non-empty `test` set, at `k`.
pub(crate) fn score_list(ids: &[u32], test: &HashSet<u32>, k: usize) -> ListScore {
    let (mut hits, mut dcg, mut ap) = (0usize, 0.0f64, 0.0f64);
    for (pos, id) in ids.iter().take(k).enumerate() {
        if test.contains(id) {
            hits += 1;
            dcg += 1.0 / ((pos + 2) as f64).log2();
            ap += hits as f64 / (pos + 1) as f64;
        }
    }
    let ideal_hits = k.min(test.len()).max(1);
    let ideal: f64 = (0..ideal_hits).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    ListScore {
        hits,
        recall: hits as f64 / test.len().max(1) as f64,
        ndcg: dcg / ideal,
        map: ap / ideal_hits as f64,
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io("writing", path, e)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Write the split for the peer scripts: `train.csv` (user,item,weight,ts), `test.csv`
/// (user,item) and `meta.json`.
fn write_split(dir: &Path, snap: &Snapshot, splits: &[(u32, UserSplit)], k: usize) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let train_path = dir.join("train.csv");
    let mut train =
        std::io::BufWriter::new(std::fs::File::create(&train_path).map_err(io(&train_path))?);
    let test_path = dir.join("test.csv");
    let mut test =
        std::io::BufWriter::new(std::fs::File::create(&test_path).map_err(io(&test_path))?);
    writeln!(train, "user,item,weight,ts").map_err(io(&train_path))?;
    writeln!(test, "user,item").map_err(io(&test_path))?;
    for (_, sp) in splits {
        let mut pairs: HashMap<u32, (u32, u64)> = HashMap::new();
        for (ts, e) in &sp.train {
            if let Some(i) = e.item.filter(|_| e.kind.is_interest()) {
                let p = pairs.entry(i).or_default();
                p.0 += 1;
                p.1 = p.1.max(*ts);
            }
        }
        let mut pairs: Vec<_> = pairs.into_iter().collect();
        pairs.sort_unstable();
        let user = csv_field(&sp.name);
        for (i, (w, ts)) in pairs {
            if let Some(name) = snap.item_name(i) {
                writeln!(train, "{user},{},{w},{ts}", csv_field(&name)).map_err(io(&train_path))?;
            }
        }
        if sp.train.iter().any(|(_, e)| e.item.is_some()) {
            for &i in &sp.test {
                if let Some(name) = snap.item_name(i) {
                    writeln!(test, "{user},{}", csv_field(&name)).map_err(io(&test_path))?;
                }
            }
        }
    }
    train.flush().map_err(io(&train_path))?;
    test.flush().map_err(io(&test_path))?;
    let meta = serde_json::json!({
        "catalogue": snap.live_items(),
        "k": k,
        "dataset": dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    });
    let meta_path = dir.join("meta.json");
    std::fs::write(&meta_path, meta.to_string()).map_err(io(&meta_path))?;
    Ok(())
}
