//! A/B slots: which strategy serves which user on a page slot, and what those users then did.
//!
//! A slot (`home`, `cart`…) holds weighted variants. A user is routed by a stable hash of
//! their id salted with the slot name, so they see the same variant on every visit and the
//! splits of different slots are independent. Each answer served through a slot counts its
//! items as impressions for the variant (strategy and version) that was routed to, and
//! remembers them per user and slot; a later click or purchase of one of those items is
//! attributed to that variant. A query that fell back to the built-in ranker stays in its
//! variant's figures (intention to treat) and is counted in `fallbacks`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_skiplist::SkipMap;
use serde::{Deserialize, Serialize};

use super::interleave::{Outcome, Team};
use crate::event::{Event, EventKind};

/// The name that stands for the built-in ranker wherever a strategy is named.
pub const BUILTIN: &str = "builtin";

/// Who ranks: the built-in ranker or a loaded plugin, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Strategy {
    /// The built-in ranker (each scenario's own score).
    Builtin,
    /// The current version of the named plugin.
    Plugin(String),
}

impl From<String> for Strategy {
    fn from(s: String) -> Self {
        if s == BUILTIN {
            Strategy::Builtin
        } else {
            Strategy::Plugin(s)
        }
    }
}

impl From<Strategy> for String {
    fn from(s: Strategy) -> Self {
        s.name().to_string()
    }
}

impl Strategy {
    /// `builtin` or the plugin name.
    pub fn name(&self) -> &str {
        match self {
            Strategy::Builtin => BUILTIN,
            Strategy::Plugin(n) => n,
        }
    }
}

/// What a variant does with the users of its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// It ranks the answers of the users routed to it by weight (an A/B arm).
    #[default]
    Serve,
    /// It ranks a sample of the slot's answers off the request path and is compared with
    /// what was served; its lists are never shown ([`crate::plugin::shadow`]).
    Shadow,
    /// It shares every answer of the slot with the slot's other `interleave` variant, by
    /// team-draft interleaving ([`crate::plugin::interleave`]).
    Interleave,
}

impl Mode {
    fn is_serve(&self) -> bool {
        *self == Mode::Serve
    }
}

/// Most shadow variants one slot may run: each one is another ranking per sampled answer.
pub const MAX_SHADOWS: usize = 4;

/// One arm of a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Who ranks for the users routed here.
    pub strategy: Strategy,
    /// Share of users, relative to the other serving variants' weights. Only a `serve`
    /// variant has one: a shadow serves no one and an interleaved pair serves everyone.
    #[serde(default)]
    pub weight: u32,
    /// `serve` (the default), `shadow` or `interleave`.
    #[serde(default, skip_serializing_if = "Mode::is_serve")]
    pub mode: Mode,
    /// A shadow's share of the slot's answers that it also ranks, in (0, 1]; 1 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<f64>,
}

impl Variant {
    /// A serving variant of `strategy` with `weight`.
    pub fn new(strategy: impl Into<String>, weight: u32) -> Variant {
        Variant {
            strategy: Strategy::from(strategy.into()),
            weight,
            mode: Mode::Serve,
            sample: None,
        }
    }

    /// A shadow of `strategy` that ranks a share `sample` of the slot's answers.
    pub fn shadow(strategy: impl Into<String>, sample: f64) -> Variant {
        Variant {
            mode: Mode::Shadow,
            sample: Some(sample),
            ..Variant::new(strategy, 0)
        }
    }

    /// One of the two teams of an interleaved slot.
    pub fn interleave(strategy: impl Into<String>) -> Variant {
        Variant {
            mode: Mode::Interleave,
            ..Variant::new(strategy, 0)
        }
    }

    /// The shadow's sample rate (1 when unset).
    pub(crate) fn sample_rate(&self) -> f64 {
        self.sample.unwrap_or(1.0)
    }
}

/// Who serves one answer of a slot.
#[derive(Debug)]
pub(crate) enum Route<'a> {
    /// One variant ranks it.
    One(&'a Variant),
    /// Two variants share it by team-draft interleaving.
    Interleave(&'a Variant, &'a Variant),
}

/// A slot's variants with the precomputed routing table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    pub variants: Vec<Variant>,
    total: u64,
    seed: u64,
}

impl Slot {
    /// The slot, or why these variants make no slot.
    pub(crate) fn new(name: &str, variants: Vec<Variant>) -> Result<Slot, String> {
        let count = |m: Mode| variants.iter().filter(|v| v.mode == m).count();
        let (serving, shadows, interleaved) = (
            count(Mode::Serve),
            count(Mode::Shadow),
            count(Mode::Interleave),
        );
        for v in &variants {
            let who = v.strategy.name();
            if v.mode != Mode::Serve && v.weight != 0 {
                return Err(format!(
                    "variant `{who}` is `{}` and takes no weight: a shadow serves no one and an \
                     interleaved pair serves everyone; leave `weight` out",
                    if v.mode == Mode::Shadow {
                        "shadow"
                    } else {
                        "interleave"
                    }
                ));
            }
            match (v.mode, v.sample) {
                (Mode::Shadow, Some(r)) if !(r > 0.0 && r <= 1.0) => {
                    return Err(format!(
                        "shadow `{who}` has sample {r}; a sample is a share of answers in (0, 1]"
                    ))
                }
                (Mode::Serve | Mode::Interleave, Some(_)) => {
                    return Err(format!(
                        "variant `{who}` has a sample, which only a `shadow` variant takes"
                    ))
                }
                _ => {}
            }
        }
        // A shadow or team shares its figures key with any other variant of its strategy.
        for (i, v) in variants.iter().enumerate() {
            let twice = variants
                .iter()
                .enumerate()
                .any(|(j, w)| i != j && w.strategy == v.strategy);
            if v.mode != Mode::Serve && twice {
                return Err(format!(
                    "strategy `{}` appears twice in the slot; a shadow or interleaved strategy \
                     must appear once",
                    v.strategy.name()
                ));
            }
        }
        if shadows > MAX_SHADOWS {
            return Err(format!(
                "{shadows} shadow variants; the limit is {MAX_SHADOWS} per slot"
            ));
        }
        if interleaved > 0 && (interleaved != 2 || serving != 0) {
            return Err(format!(
                "an interleaved slot has exactly two `interleave` variants and no `serve` ones \
                 (this one has {interleaved} and {serving}); to compare interleaving with an A/B \
                 split, use two slots"
            ));
        }
        let total = variants
            .iter()
            .filter(|v| v.mode == Mode::Serve)
            .map(|v| u64::from(v.weight))
            .sum();
        if total == 0 && interleaved == 0 {
            return Err(format!(
                "slot `{name}` needs a `serve` variant with a weight above 0, or two \
                 `interleave` variants"
            ));
        }
        Ok(Slot {
            variants,
            total,
            seed: xxhash_rust::xxh3::xxh3_64(name.as_bytes()),
        })
    }

    /// Who serves `user`: the same serving variant every time for the same slot and weights
    /// (anonymous traffic, `None`, all goes to one), or the interleaved pair.
    pub(crate) fn route(&self, user: Option<&str>) -> Route<'_> {
        let mut teams = self.variants.iter().filter(|v| v.mode == Mode::Interleave);
        if let (Some(a), Some(b)) = (teams.next(), teams.next()) {
            return Route::Interleave(a, b);
        }
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(user.unwrap_or("").as_bytes(), self.seed);
        let mut at = h % self.total.max(1);
        let serving = self.variants.iter().filter(|v| v.mode == Mode::Serve);
        for v in serving.clone() {
            let w = u64::from(v.weight);
            if at < w {
                return Route::One(v);
            }
            at -= w;
        }
        // Unreachable while `total` is the sum of the serving weights (`new` refuses a slot
        // with neither weight nor a pair); the first variant is a safe answer all the same.
        Route::One(serving.into_iter().next().unwrap_or(&self.variants[0]))
    }

    /// The slot's shadow variants.
    pub(crate) fn shadows(&self) -> impl Iterator<Item = &Variant> {
        self.variants.iter().filter(|v| v.mode == Mode::Shadow)
    }
}

/// What users routed to one variant did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantStats {
    /// The slot.
    pub slot: String,
    /// The strategy (`builtin` or a plugin name).
    pub strategy: String,
    /// The plugin version that served (0 for the built-in ranker).
    pub version: u32,
    /// `serve`, `shadow` or `interleave`.
    pub mode: Mode,
    /// Answers served (for an interleaved team: answers it shared).
    pub serves: u64,
    /// Items shown (for an interleaved team: the items it contributed).
    pub impressions: u64,
    /// Clicks on items it showed.
    pub clicks: u64,
    /// Purchases of items it showed.
    pub purchases: u64,
    /// Answers that fell back to the built-in ranker after a plugin fault.
    pub fallbacks: u64,
    /// clicks / impressions.
    pub ctr: f64,
    /// purchases / impressions.
    pub conversion: f64,
    /// For an interleaved team: its wins and losses against the other team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interleave: Option<InterleaveStats>,
    /// For a shadow: what it would have shown, against what was served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<super::shadow::ShadowStats>,
}

/// One team's record in an interleaved slot ([`super::interleave`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterleaveStats {
    /// The other team: `strategy@version`.
    pub against: String,
    /// Answers in which the shopper took more of this team's items.
    pub wins: u64,
    /// Answers in which they took more of the other team's.
    pub losses: u64,
    /// Answers with equal credit, more than none.
    pub ties: u64,
    /// Interleaved answers served, those nobody acted on included.
    pub answers: u64,
    /// The exact two-sided sign test of wins against losses: the chance of a split at least
    /// this uneven between two equally good strategies. Valid for one look
    /// ([`super::interleave::sign_test`]).
    pub p_value: f64,
}

#[derive(Debug, Default)]
struct Counts {
    serves: AtomicU64,
    impressions: AtomicU64,
    clicks: AtomicU64,
    purchases: AtomicU64,
    fallbacks: AtomicU64,
}

impl Counts {
    fn load(&self) -> [u64; 5] {
        [
            self.serves.load(Relaxed),
            self.impressions.load(Relaxed),
            self.clicks.load(Relaxed),
            self.purchases.load(Relaxed),
            self.fallbacks.load(Relaxed),
        ]
    }

    fn add(&self, c: [u64; 5]) {
        let [serves, impressions, clicks, purchases, fallbacks] = c;
        self.serves.fetch_add(serves, Relaxed);
        self.impressions.fetch_add(impressions, Relaxed);
        self.clicks.fetch_add(clicks, Relaxed);
        self.purchases.fetch_add(purchases, Relaxed);
        self.fallbacks.fetch_add(fallbacks, Relaxed);
    }
}

/// The figures of one interleaved pair: each team's counts and the outcomes.
#[derive(Debug, Default)]
struct Pair {
    teams: [Counts; 2],
    a_wins: AtomicU64,
    b_wins: AtomicU64,
    ties: AtomicU64,
}

impl Pair {
    fn outcome(&self, o: Outcome) -> Option<&AtomicU64> {
        match o {
            Outcome::Nothing => None,
            Outcome::AWins => Some(&self.a_wins),
            Outcome::BWins => Some(&self.b_wins),
            Outcome::Tie => Some(&self.ties),
        }
    }
}

/// (slot, strategy A, version A, strategy B, version B).
type PairKey = (String, String, u32, String, u32);

/// One variant's A/B counters as the store saves them (key `P` `a`, FORMAT.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedFigures {
    /// (slot, strategy, plugin version).
    pub key: (String, String, u32),
    /// Serves, impressions, clicks, purchases, fallbacks.
    pub counts: [u64; 5],
}

/// One interleaved pair's figures as the store saves them (in key `P` `x`, FORMAT.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedPair {
    /// (slot, strategy A, version A, strategy B, version B).
    pub key: PairKey,
    /// Team A's and team B's serves, impressions, clicks, purchases, fallbacks.
    pub teams: [[u64; 5]; 2],
    /// A's wins, B's wins, ties.
    pub outcomes: [u64; 3],
}

/// Who gets the credit for what one user was shown on one slot.
#[derive(Debug)]
enum Credit {
    /// One variant showed every item.
    One(Arc<Counts>),
    /// Two teams shared the list.
    Pair(Box<Shared>),
}

/// An interleaved answer waiting for its shopper's clicks.
#[derive(Debug)]
struct Shared {
    /// The team of each shown item, in order.
    teams: Vec<Team>,
    /// Whether each item has been credited already (once per item and answer).
    credited: Vec<AtomicBool>,
    /// Team A's and team B's credits so far.
    credits: std::sync::Mutex<[u32; 2]>,
    pair: Arc<Pair>,
}

/// What one user was last shown on one slot.
#[derive(Debug)]
struct Shown {
    items: Vec<String>,
    credit: Credit,
}

/// Lock-free attribution tables: queries and event ingestion update them concurrently.
#[derive(Debug)]
pub(crate) struct Attribution {
    /// (slot, strategy, version) → counters.
    variants: SkipMap<(String, String, u32), Arc<Counts>>,
    /// Interleaved pairs → their figures.
    pairs: SkipMap<PairKey, Arc<Pair>>,
    /// (user, slot) → what they were last shown there.
    shown: SkipMap<(String, String), Shown>,
    /// Most (user, slot) pairs remembered; beyond it the first in key order is forgotten.
    cap: usize,
}

impl Attribution {
    pub(crate) fn new(cap: usize) -> Attribution {
        Attribution {
            variants: SkipMap::new(),
            pairs: SkipMap::new(),
            shown: SkipMap::new(),
            cap: cap.max(1),
        }
    }

    fn remember(&self, slot: &str, user: Option<&str>, items: Vec<String>, credit: Credit) {
        if let Some(user) = user {
            if self.shown.len() >= self.cap {
                self.shown.pop_front();
            }
            self.shown.insert(
                (user.to_string(), slot.to_string()),
                Shown { items, credit },
            );
        }
    }

    /// Count an answer served on `slot` by `strategy`/`version` to `user`.
    pub(crate) fn served(
        &self,
        slot: &str,
        strategy: &str,
        version: u32,
        user: Option<&str>,
        items: Vec<String>,
        fell_back: bool,
    ) {
        let counts = self
            .variants
            .get_or_insert_with((slot.to_string(), strategy.to_string(), version), || {
                Arc::new(Counts::default())
            })
            .value()
            .clone();
        counts.serves.fetch_add(1, Relaxed);
        counts.impressions.fetch_add(items.len() as u64, Relaxed);
        if fell_back {
            counts.fallbacks.fetch_add(1, Relaxed);
        }
        self.remember(slot, user, items, Credit::One(counts));
    }

    /// Count an interleaved answer on `slot`: `items` with their `teams`, team A being
    /// `a` = (strategy, version) and team B `b`; `fell_back` says which team's ranking fell
    /// back to the built-in ranker.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, every argument named"
    )]
    pub(crate) fn served_interleaved(
        &self,
        slot: &str,
        a: (&str, u32),
        b: (&str, u32),
        user: Option<&str>,
        items: Vec<String>,
        teams: Vec<Team>,
        fell_back: [bool; 2],
    ) {
        let key = (slot.to_string(), a.0.to_string(), a.1, b.0.to_string(), b.1);
        let pair = self
            .pairs
            .get_or_insert_with(key, || Arc::new(Pair::default()))
            .value()
            .clone();
        for (t, counts) in pair.teams.iter().enumerate() {
            counts.serves.fetch_add(1, Relaxed);
            let mine = teams.iter().filter(|&&x| usize::from(x) == t).count();
            counts.impressions.fetch_add(mine as u64, Relaxed);
            if fell_back[t] {
                counts.fallbacks.fetch_add(1, Relaxed);
            }
        }
        let credited = (0..items.len()).map(|_| AtomicBool::new(false)).collect();
        let shared = Shared {
            teams,
            credited,
            credits: std::sync::Mutex::new([0; 2]),
            pair,
        };
        self.remember(slot, user, items, Credit::Pair(Box::new(shared)));
    }

    /// Attribute the clicks and purchases among `events` to the variants that showed the item.
    pub(crate) fn record(&self, events: &[Event]) {
        // Nothing shown, nothing to attribute: ingestion without A/B slots skips the per-event
        // map search (and its epoch pin) entirely.
        if self.shown.is_empty() {
            return;
        }
        for e in events {
            let Some(item) = e.item.as_deref() else {
                continue;
            };
            let purchase = match e.kind {
                EventKind::Click => false,
                EventKind::Purchase { .. } => true,
                _ => continue,
            };
            let from = (e.user.clone(), String::new());
            for entry in self.shown.range(from..) {
                if entry.key().0 != e.user {
                    break;
                }
                let shown = entry.value();
                let Some(at) = shown.items.iter().position(|i| i == item) else {
                    continue;
                };
                let counts = match &shown.credit {
                    Credit::One(c) => &**c,
                    Credit::Pair(p) => {
                        let team = p.teams.get(at).copied().unwrap_or(0);
                        credit_team(p, at, team);
                        &p.pair.teams[usize::from(team.min(1))]
                    }
                };
                let c = if purchase {
                    &counts.purchases
                } else {
                    &counts.clicks
                };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Every variant's counters, for saving: (slot, strategy, version) and serves,
    /// impressions, clicks, purchases, fallbacks.
    pub(crate) fn figures(&self) -> Vec<SavedFigures> {
        self.variants
            .iter()
            .map(|e| SavedFigures {
                key: e.key().clone(),
                counts: e.value().load(),
            })
            .collect()
    }

    /// Every interleaved pair's figures, for saving.
    pub(crate) fn pair_figures(&self) -> Vec<SavedPair> {
        self.pairs
            .iter()
            .map(|e| {
                let p = e.value();
                SavedPair {
                    key: e.key().clone(),
                    teams: [p.teams[0].load(), p.teams[1].load()],
                    outcomes: [
                        p.a_wins.load(Relaxed),
                        p.b_wins.load(Relaxed),
                        p.ties.load(Relaxed),
                    ],
                }
            })
            .collect()
    }

    /// Add saved counters back (on open, before anything is served).
    pub(crate) fn restore(&self, saved: Vec<SavedFigures>, pairs: Vec<SavedPair>) {
        for f in saved {
            self.variants
                .get_or_insert_with(f.key, || Arc::new(Counts::default()))
                .value()
                .add(f.counts);
        }
        for f in pairs {
            let p = self
                .pairs
                .get_or_insert_with(f.key, || Arc::new(Pair::default()))
                .value()
                .clone();
            p.teams[0].add(f.teams[0]);
            p.teams[1].add(f.teams[1]);
            let [a, b, t] = f.outcomes;
            p.a_wins.fetch_add(a, Relaxed);
            p.b_wins.fetch_add(b, Relaxed);
            p.ties.fetch_add(t, Relaxed);
        }
    }

    /// CTR and conversion counts of `strategy`'s versions `old` and `new`, summed over the
    /// slots (for the guardrails).
    pub(crate) fn rates(
        &self,
        strategy: &str,
        old: u32,
        new: u32,
    ) -> (crate::plugin::guard::Rates, crate::plugin::guard::Rates) {
        let (mut ctr, mut conversion) = (
            crate::plugin::guard::Rates::default(),
            crate::plugin::guard::Rates::default(),
        );
        for e in self.variants.iter() {
            let (_, s, v) = e.key();
            if s != strategy {
                continue;
            }
            let [_, imp, clicks, buys, _] = e.value().load();
            if *v == old {
                ctr.old_impressions += imp;
                ctr.old += clicks;
                conversion.old_impressions += imp;
                conversion.old += buys;
            } else if *v == new {
                ctr.new_impressions += imp;
                ctr.new += clicks;
                conversion.new_impressions += imp;
                conversion.new += buys;
            }
        }
        (ctr, conversion)
    }

    /// Figures per variant of `slot` (every slot when `None`): serving variants in key
    /// order, then each interleaved pair's two teams.
    pub(crate) fn stats(&self, slot: Option<&str>) -> Vec<VariantStats> {
        let mut out: Vec<VariantStats> = self
            .variants
            .iter()
            .filter(|e| slot.is_none_or(|s| e.key().0 == s))
            .map(|e| {
                let (slot, strategy, version) = e.key().clone();
                row(slot, strategy, version, Mode::Serve, e.value().load())
            })
            .collect();
        for e in self.pairs.iter() {
            let (s, a, va, b, vb) = e.key();
            if slot.is_some_and(|want| want != s) {
                continue;
            }
            let p = e.value();
            let (aw, bw, ties) = (
                p.a_wins.load(Relaxed),
                p.b_wins.load(Relaxed),
                p.ties.load(Relaxed),
            );
            let answers = p.teams[0].serves.load(Relaxed);
            let p_value = super::interleave::sign_test(aw, bw);
            for (team, (name, v, other, ov, wins, losses)) in
                [(a, *va, b, *vb, aw, bw), (b, *vb, a, *va, bw, aw)]
                    .into_iter()
                    .enumerate()
            {
                let mut r = row(
                    s.clone(),
                    name.clone(),
                    v,
                    Mode::Interleave,
                    p.teams[team].load(),
                );
                r.interleave = Some(InterleaveStats {
                    against: format!("{other}@{ov}"),
                    wins,
                    losses,
                    ties,
                    answers,
                    p_value,
                });
                out.push(r);
            }
        }
        out
    }
}

/// Credit `team` for item `at` of an interleaved answer, once per item, and move the
/// answer's outcome.
fn credit_team(p: &Shared, at: usize, team: Team) {
    if p.credited.get(at).is_none_or(|c| c.swap(true, Relaxed)) {
        return;
    }
    // Under the answer's own lock: two events crediting one answer at once would otherwise
    // both move its outcome from the same starting point, and a count could dip below zero
    // for a moment where a reader sees it.
    let mut credits = p
        .credits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let was = Outcome::of(credits[0], credits[1]);
    let t = usize::from(team.min(1));
    credits[t] = credits[t].saturating_add(1);
    let now = Outcome::of(credits[0], credits[1]);
    if was != now {
        // Add before taking away: a reader between the two sees one answer counted twice,
        // never a count below what it was.
        if let Some(c) = p.pair.outcome(now) {
            c.fetch_add(1, Relaxed);
        }
        if let Some(c) = p.pair.outcome(was) {
            c.fetch_sub(1, Relaxed);
        }
    }
}

/// A stats row from counts.
fn row(slot: String, strategy: String, version: u32, mode: Mode, c: [u64; 5]) -> VariantStats {
    let [serves, impressions, clicks, purchases, fallbacks] = c;
    let rate = |x: u64| {
        if impressions == 0 {
            0.0
        } else {
            x as f64 / impressions as f64
        }
    };
    VariantStats {
        slot,
        strategy,
        version,
        mode,
        serves,
        impressions,
        clicks,
        purchases,
        fallbacks,
        ctr: rate(clicks),
        conversion: rate(purchases),
        interleave: None,
        shadow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_follows_weights() {
        let slot =
            Slot::new("home", vec![Variant::new("a", 1), Variant::new("b", 3)]).expect("weighted");
        let mut b = 0;
        for u in 0..4000 {
            let user = format!("u{u}");
            let name = |r: Route<'_>| match r {
                Route::One(v) => v.strategy.name().to_string(),
                Route::Interleave(..) => String::new(),
            };
            let v = name(slot.route(Some(&user)));
            assert_eq!(v, name(slot.route(Some(&user))), "same user, same variant");
            b += usize::from(v == "b");
        }
        assert!((2800..3200).contains(&b), "b got {b} of 4000 at weight 3/4");
        assert!(Slot::new("x", vec![Variant::new("a", 0)]).is_err());
    }

    #[test]
    fn modes_are_checked_and_shadows_never_route() {
        let err = |v: Vec<Variant>| Slot::new("s", v).err().unwrap_or_default();
        let shadowed = Slot::new("s", vec![Variant::new("a", 1), Variant::shadow("b", 0.5)])
            .expect("a served and a shadow");
        for u in 0..200 {
            assert!(matches!(
                shadowed.route(Some(&format!("u{u}"))),
                Route::One(v) if v.strategy.name() == "a"
            ));
        }
        assert_eq!(shadowed.shadows().count(), 1);
        assert!(err(vec![Variant::shadow("b", 1.0)]).contains("needs a `serve` variant"));
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            let e = err(vec![Variant::new("a", 1), Variant::shadow("b", bad)]);
            assert!(e.contains("in (0, 1]"), "{bad}: {e}");
        }
        let weighted = Variant {
            weight: 3,
            ..Variant::shadow("b", 1.0)
        };
        assert!(err(vec![Variant::new("a", 1), weighted]).contains("takes no weight"));
        let sampled = Variant {
            sample: Some(0.5),
            ..Variant::new("a", 1)
        };
        assert!(err(vec![sampled]).contains("only a `shadow`"));
        let many = (0..=MAX_SHADOWS).map(|i| Variant::shadow(format!("s{i}"), 1.0));
        let e = err(std::iter::once(Variant::new("a", 1)).chain(many).collect());
        assert!(e.contains("the limit is 4"), "{e}");
        // Interleaving: exactly two distinct teams and nothing serving beside them.
        let pair = Slot::new(
            "s",
            vec![Variant::interleave("a"), Variant::interleave("b")],
        )
        .expect("a pair");
        assert!(matches!(pair.route(Some("u")), Route::Interleave(a, b)
            if a.strategy.name() == "a" && b.strategy.name() == "b"));
        assert!(err(vec![Variant::interleave("a")]).contains("exactly two"));
        let e = err(vec![
            Variant::interleave("a"),
            Variant::interleave("b"),
            Variant::new("c", 1),
        ]);
        assert!(e.contains("exactly two"), "{e}");
        let e = err(vec![Variant::interleave("a"), Variant::interleave("a")]);
        assert!(e.contains("appears twice"), "{e}");
        let e = err(vec![Variant::new("a", 1), Variant::shadow("a", 1.0)]);
        assert!(e.contains("appears twice"), "{e}");
        // Serving variants may repeat, as they always could (their weights add up).
        assert!(Slot::new("s", vec![Variant::new("a", 1), Variant::new("a", 2)]).is_ok());
    }

    #[test]
    fn interleaved_credit_goes_to_the_team_once_per_item() {
        let a = Attribution::new(10);
        let items: Vec<String> = ["x", "y", "z", "w"].map(String::from).to_vec();
        a.served_interleaved(
            "home",
            ("p", 1),
            ("q", 2),
            Some("u1"),
            items.clone(),
            vec![0, 1, 1, 0],
            [false; 2],
        );
        a.served_interleaved(
            "home",
            ("p", 1),
            ("q", 2),
            Some("u2"),
            items.clone(),
            vec![1, 0, 0, 1],
            [false; 2],
        );
        a.served_interleaved(
            "home",
            ("p", 1),
            ("q", 2),
            Some("u3"),
            items,
            vec![0, 1, 0, 1],
            [false; 2],
        );
        a.record(&[
            // u1: x (p), then y and z (q): q wins. The second click on y counts nothing.
            Event::click("u1", "x", 1),
            Event::click("u1", "y", 2),
            Event::click("u1", "y", 3),
            Event::purchase("u1", "z", 1, 2.0, 4),
            // u2: x (q) and y (p): a tie.
            Event::click("u2", "x", 5),
            Event::click("u2", "y", 6),
            // u3: nothing.
            Event::click("u9", "x", 7),
        ]);
        let s = a.stats(Some("home"));
        assert_eq!(s.len(), 2, "{s:?}");
        let (p, q) = (&s[0], &s[1]);
        assert_eq!((p.strategy.as_str(), q.strategy.as_str()), ("p", "q"));
        let (pi, qi) = (
            p.interleave.clone().expect("p"),
            q.interleave.clone().expect("q"),
        );
        assert_eq!((pi.wins, pi.losses, pi.ties, pi.answers), (0, 1, 1, 3));
        assert_eq!((qi.wins, qi.losses, qi.ties), (1, 0, 1));
        assert_eq!(pi.against, "q@2");
        // Clicks count every event, as an A/B variant's do; the outcome counts items.
        assert_eq!((p.clicks, q.clicks, q.purchases), (2, 3, 1));
        assert_eq!((p.impressions, q.impressions), (6, 6));
        assert!((pi.p_value - 1.0).abs() < 1e-12);
        // Saved and restored, the figures are the same.
        let b = Attribution::new(10);
        b.restore(a.figures(), a.pair_figures());
        assert_eq!(b.stats(None), s);
    }

    #[test]
    fn clicks_and_purchases_follow_what_was_shown() {
        let a = Attribution::new(10);
        a.served(
            "home",
            "p",
            2,
            Some("u1"),
            vec!["x".into(), "y".into()],
            false,
        );
        a.record(&[
            Event::click("u1", "x", 1),
            Event::click("u1", "z", 2),
            Event::purchase("u1", "y", 1, 3.0, 3),
            Event::click("u2", "x", 4),
        ]);
        let s = &a.stats(Some("home"))[0];
        assert_eq!((s.impressions, s.clicks, s.purchases), (2, 1, 1));
        assert!((s.ctr - 0.5).abs() < 1e-9);
    }
}
