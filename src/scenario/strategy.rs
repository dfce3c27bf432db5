//! The ranking step as a plugin: turn a scenario's candidates into the ABI's feature columns
//! and context block, call the plugin, and take its scores, or keep the built-in order when
//! it faults.

use serde::{Deserialize, Serialize};

use super::rank::Cand;
use super::{Ask, Reason, Scenario};
use crate::activity::item::ItemStats;
use crate::activity::segments::Lifecycle;
use crate::codec::StoredItem;
use crate::config::Config;
use crate::plugin::abi::{Context, Feature};
use crate::plugin::registry::Choice;
use crate::plugin::runner::rank_key;
use crate::plugin::version::Input;
use crate::plugin::Fault;
use crate::snapshot::{Row, Snapshot};

/// Who ranked an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedBy {
    /// `builtin` or the plugin name that was chosen.
    pub strategy: String,
    /// The plugin version that ranked it (`None` for the built-in ranker).
    pub version: Option<u32>,
    /// The slot that routed the query, if any.
    pub slot: Option<String>,
    /// Why the built-in ranker served instead of the chosen plugin: a fault (the query
    /// fell back), or `disabled`.
    pub fallback: Option<String>,
    /// On an interleaved slot: the second strategy, and which strategy contributed each
    /// result. The fields above are then the first strategy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interleaved: Option<Interleaved>,
}

/// The second team of an interleaved answer ([`crate::plugin::interleave`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interleaved {
    /// `builtin` or the plugin name of the second strategy.
    pub strategy: String,
    /// Its plugin version (`None` for the built-in ranker or after a fault).
    pub version: Option<u32>,
    /// Why the built-in ranker ranked its half, if it did.
    pub fallback: Option<String>,
    /// For each result, in order, the strategy that put it in the list.
    pub teams: Vec<String>,
}

/// An answer with the strategy that ranked it. Its JSON form is [`Served::answer`]'s, the one
/// shape every answer has on the socket and from the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The recommendations, best first.
    pub items: Vec<crate::search::Recommendation>,
    /// Who ranked them.
    pub ranked_by: RankedBy,
    /// What became of the answer's impression, when the store records it (the ask names a
    /// user and a slot, see [`crate::Config::record_served_impressions`]); `None` otherwise.
    pub impression: Option<crate::impressions::Recording>,
    /// The cursor of the next page, for a paged ask ([`crate::Ask::paged`],
    /// [`crate::Ask::cursor`]) with more to show; `None` otherwise.
    pub next_cursor: Option<String>,
}

/// The scenario's code in the context block (see [`Context::scenario`]).
pub(crate) fn scenario_code(s: &Scenario) -> u32 {
    match s {
        Scenario::Similar { .. } => 1,
        Scenario::Profile { .. } => 2,
        Scenario::Together { .. } => 3,
        Scenario::Viewed { .. } => 4,
        Scenario::ForUser => 5,
        Scenario::Cart { .. } => 6,
        Scenario::AfterPurchase => 7,
        Scenario::SearchRerank { .. } => 8,
        Scenario::Trending => 9,
        Scenario::Gift { .. } => 10,
        Scenario::Substitutes { .. } => 11,
        Scenario::Complements { .. } => 12,
    }
}

/// The context block for `ask` and its (dense) user.
pub(crate) fn context(snap: &Snapshot, cfg: &Config, ask: &Ask, user: Option<u32>) -> Context {
    let mut c = Context {
        k: crate::narrow::u32_from(ask.k),
        scenario: scenario_code(&ask.scenario),
        slot: ask.slot.as_deref().map_or(0, Context::slot_code),
        ..Context::default()
    };
    let Some(u) = user else { return c };
    let tags = match snap.user_row(u) {
        Some(Row::Delta(r)) => r.tags.clone(),
        Some(Row::Segment(i)) => snap.seg().users.forward.row_vec(i),
        None => Vec::new(),
    };
    for (t, _) in tags {
        match snap.tag_name(t) {
            Some("member") => c.tier = c.tier.max(1),
            Some(name) => {
                if let Some(n) = name.strip_prefix("tier:").and_then(|n| n.parse().ok()) {
                    c.tier = n;
                }
            }
            None => {}
        }
    }
    if let Some(s) = snap.activity.user(u) {
        if s.orders > 0 {
            c.spend_band =
                Context::band_code(crate::narrow::f32_from(s.spend / f64::from(s.orders)));
        }
        c.segment = match Lifecycle::of(s, snap.activity.now(), &cfg.lifecycle) {
            Lifecycle::New => 1,
            Lifecycle::Active => 2,
            Lifecycle::Dormant => 3,
            Lifecycle::Churned => 4,
        };
    }
    c
}

/// An opaque 24-bit code of a category path (0 for none): exact in an `f32`.
fn category_code(path: &str) -> f32 {
    if path.is_empty() {
        0.0
    } else {
        (xxhash_rust::xxh3::xxh3_64(path.as_bytes()) % 0xFF_FFFF + 1) as f32
    }
}

/// Cosine of an item's tags against a sorted profile with norm `pnorm`.
fn tag_match(profile: &[(u32, f32)], pnorm: f32, tags: impl Iterator<Item = (u32, f32)>) -> f32 {
    let (mut dot, mut norm) = (0.0f32, 0.0f32);
    for (t, w) in tags {
        norm += w * w;
        if let Ok(i) = profile.binary_search_by_key(&t, |p| p.0) {
            dot += w * profile[i].1;
        }
    }
    if dot <= 0.0 || pnorm <= 0.0 {
        0.0
    } else {
        dot / (pnorm * norm.sqrt())
    }
}

/// What one candidate's features are read from, looked up once for all its columns.
struct Facts<'a> {
    stats: Option<&'a ItemStats>,
    row: Option<Row<StoredItem>>,
}

/// One feature of a candidate.
fn feature(
    snap: &Snapshot,
    cfg: &Config,
    f: Feature,
    facts: &Facts<'_>,
    c: &Cand,
    profile: &[(u32, f32)],
    pnorm: f32,
) -> f32 {
    let items = &snap.seg().items;
    let now = snap.activity.now();
    let stats = facts.stats;
    // A column of the segment's item table, or a field of the delta's record.
    macro_rules! column {
        ($field:ident, $delta:expr) => {
            match &facts.row {
                Some(Row::Delta(r)) => Some($delta(&**r)),
                Some(Row::Segment(i)) => items.$field.get(*i as usize).map(|v| v.to_native()),
                None => None,
            }
        };
    }
    match f {
        Feature::Similarity => c.score,
        Feature::Lift => c
            .reasons
            .iter()
            .map(|r| match r {
                Reason::BoughtTogether { lift, .. }
                | Reason::ViewedTogether { lift, .. }
                | Reason::Complement { lift, .. } => *lift,
                _ => 0.0,
            })
            .fold(0.0, f32::max),
        Feature::Popularity => stats.map_or(0.0, |s| {
            s.popularity(now, cfg.popularity_half_life_days as f64 * 86_400.0)
        }),
        Feature::ConversionRate => stats.map_or(0.0, |s| s.conversion()),
        Feature::Sales => stats.map_or(0.0, |s| s.units as f32),
        Feature::ReviewCount => stats.map_or(0.0, |s| s.reviews as f32),
        Feature::Rating => stats.and_then(|s| s.rating()).unwrap_or(0.0),
        Feature::Price => column!(price, |r: &StoredItem| r.price).unwrap_or(0.0),
        Feature::Stock => column!(stock, |r: &StoredItem| r.stock).map_or(0.0, |s| s as f32),
        Feature::AgeDays => match column!(created_at, |r: &StoredItem| r.created_at) {
            Some(t) if t > 0 => now.saturating_sub(t) as f32 / 86_400.0,
            _ => 0.0,
        },
        Feature::Category => match &facts.row {
            Some(Row::Delta(r)) => category_code(&r.category),
            Some(Row::Segment(i)) => category_code(items.category_of(*i)),
            None => 0.0,
        },
        Feature::MembersOnly => match &facts.row {
            Some(Row::Delta(r)) => f32::from(u8::from(r.members_only)),
            Some(Row::Segment(i)) => f32::from(u8::from(crate::segment::read::bit(
                &items.members_only,
                *i as usize,
            ))),
            None => 0.0,
        },
        Feature::TagMatch => match &facts.row {
            Some(Row::Delta(r)) => tag_match(profile, pnorm, r.tags.iter().copied()),
            Some(Row::Segment(i)) => {
                let (t, w) = items.forward.row(*i);
                let row = t.iter().zip(w).map(|(t, w)| (t.to_native(), w.to_native()));
                tag_match(profile, pnorm, row)
            }
            None => 0.0,
        },
    }
}

/// Re-rank `list` (already filtered and boosted) with the chosen plugin. The best
/// `max(rerank_depth, k)` by the scenario's own score are scored by the plugin and the rest
/// are dropped; on a fault `list` keeps the built-in scores and the fault is returned.
pub(crate) fn rerank(
    snap: &Snapshot,
    cfg: &Config,
    ask: &Ask,
    user: Option<u32>,
    choice: &Choice,
    list: &mut Vec<(u32, Cand, bool)>,
) -> Option<Fault> {
    let v = choice.version.as_ref()?;
    list.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    list.truncate(cfg.plugins.rerank_depth.max(ask.k));
    if list.is_empty() {
        return None;
    }
    let features = v.features();
    let profile = match (features.contains(Feature::TagMatch), user) {
        (true, Some(u)) => super::personal::profile(snap, cfg, u),
        _ => Vec::new(),
    };
    let pnorm = profile.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
    let mut input = Input {
        context: context(snap, cfg, ask, user),
        ids: list.iter().map(|c| c.0).collect(),
        columns: vec![Vec::with_capacity(list.len()); features.len()],
    };
    for (id, c, _) in list.iter() {
        let facts = Facts {
            stats: snap.activity.item(*id),
            row: snap.item_row(*id),
        };
        for (col, f) in input.columns.iter_mut().zip(features.iter()) {
            col.push(feature(snap, cfg, f, &facts, c, &profile, pnorm));
        }
    }
    let ran = if choice.shadow {
        v.run_shadow(&input)
    } else {
        v.run(&input)
    };
    match ran {
        Ok(out) => {
            for ((_, c, _), s) in list.iter_mut().zip(out.scores) {
                c.score = rank_key(s);
            }
            None
        }
        Err(f) => Some(f),
    }
}
