//! The shop's recommendation scenarios, each one library call: where the customer is decides
//! which question is asked.
//!
//! | scenario | where | candidates | score |
//! |---|---|---|---|
//! | `similar` | product page: more like this | tag similarity | cosine |
//! | `profile` | any: a tag profile | tag similarity | cosine |
//! | `substitutes` | product page: "instead of this" | similar tags + viewed together | tag match and viewing, damped by co-buying |
//! | `complements` | cart, receipt: "goes with this" | bought together | association, damped by tag match |
//! | `together` | product page | bought together | association (shrunk lift) |
//! | `viewed` | product page | viewed together | association (shrunk lift) |
//! | `for-user` | home page | co-occurrence of recent items + tag profile + trending | blend |
//! | `cart` | cart | co-occurrence of the basket and the shopper's history | blend |
//! | `after-purchase` | receipt | bought (and viewed) with the last basket | summed association |
//! | `search-rerank` | search results | the given list | keywords + user match + social proof |
//! | `trending` | anywhere | items with activity | decayed popularity |
//! | `gift` | campaign | items tagged `for:<recipient>` | popularity + rating |
//!
//! Every scenario takes a [`Filter`], "exclude purchased"/"exclude seen" for the asking user,
//! campaign [`Boost`]s, members-first, and an optional MMR diversity re-rank; every result says
//! why it was recommended ([`Reason`]). `users-like` ([`Store::users_like`]) returns users.
//!
//! * [`cooccur`] — together, viewed, after-purchase, and the co-occurrence part of the blends.
//! * [`relations`] — substitutes and complements.
//! * [`personal`] — for-user and the user's tag profile.
//! * [`users_like`] — similar users, scanned over `user_matrix`.
//! * [`catalogue`] — trending, gift guides, search re-ranking.
//! * [`answer`] — the one JSON shape of every answer (socket and CLI `--json`).
//! * `rank` — the shared tail: filters, boosts, members first, MMR, explanations.
//! * [`strategy`] — the ranking step as a WebAssembly plugin ([`crate::plugin`]), chosen by
//!   [`Ask::strategy`] or by the A/B routing of [`Ask::slot`].

pub mod answer;
pub mod catalogue;
pub mod cooccur;
pub(crate) mod history;
pub mod personal;
pub(crate) mod rank;
pub mod relations;
pub(crate) mod shown;
pub mod strategy;
pub(crate) mod user_matrix;
pub mod users_like;

use serde::{Deserialize, Serialize};

pub use answer::Answer;
pub use strategy::{Interleaved, RankedBy, Served};
pub use users_like::UserMatch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::display_id;
use crate::plugin::registry::{Choice, ShadowPick};
use crate::plugin::shadow::Comparison;
use crate::plugin::Plugins;
pub use crate::recommendation::Reason;
use crate::search::{Filter, Recommendation, MAX_K};
use crate::single_flight::Derived;
use crate::snapshot::Snapshot;

/// What a scenario reads besides the snapshot: the store's configuration, its plugin registry,
/// and the relations derived from snapshots that are kept between queries.
pub(crate) struct Env<'a> {
    /// The store's configuration.
    pub config: &'a Config,
    /// The plugin registry (strategies, slots).
    pub plugins: &'a Plugins,
    /// The kept derived relations.
    pub derived: &'a Derivations,
    /// Set for a shadow's ranking: it reads the kept relations as they are and never builds
    /// or replaces one, so that the shadow worker, which runs at idle priority on an older
    /// snapshot, never holds the lock queries build under nor swaps in an older value.
    pub shadow: bool,
    /// How many of the answer are shown now: the first page of a paged ask, ranked deeper
    /// than it shows. A/B and interleaving figures count these only. `None`: all.
    pub shown: Option<usize>,
}

impl Env<'_> {
    /// The liked-by-the-same-people relation for `snap` (see [`Env::shadow`]).
    fn history(&self, snap: &Snapshot) -> std::sync::Arc<history::History> {
        if self.shadow {
            // The relation kept now, however fresh; one built for this ranking alone if the
            // store has none yet.
            return self
                .derived
                .history
                .peek()
                .unwrap_or_else(|| std::sync::Arc::new(history::History::build(&snap.activity)));
        }
        self.derived.history(snap)
    }
}

/// The relations derived from snapshots that scenarios keep between queries, each built by
/// one query at a time however many want it (`single_flight`).
#[derive(Default)]
pub(crate) struct Derivations {
    /// The profiles `users-like` scans (see `user_matrix`).
    pub(crate) users_matrix: Derived<user_matrix::UserMatrix>,
    /// The liked-by-the-same-people relation `for-user` and `cart` blend in (see `history`).
    pub(crate) history: Derived<history::History>,
}

/// Which question is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "kebab-case")]
pub enum Scenario {
    /// Substitutes: items with similar tags.
    Similar {
        /// The item on the page.
        item: String,
    },
    /// Items matching a weighted tag profile.
    Profile {
        /// `(tag, weight)` pairs.
        tags: Vec<(String, f32)>,
    },
    /// Items that could replace `item` ("instead of this", for the product page): a strong
    /// tag match, often viewed in the same sessions, rarely bought in the same baskets. Each
    /// result carries a [`Reason::Substitute`] with that evidence.
    Substitutes {
        /// The item on the page.
        item: String,
    },
    /// Items that complete `item` ("goes with this", for the cart and after purchase): bought
    /// in the same baskets, unlike it in tags. Each result carries a [`Reason::Complement`].
    Complements {
        /// The item on the page.
        item: String,
    },
    /// Bought in the same basket as `item`, ranked by association.
    Together {
        /// The item on the page.
        item: String,
    },
    /// Viewed in the same session as `item`.
    Viewed {
        /// The item on the page.
        item: String,
    },
    /// The home page: a blend of what co-occurs with the user's recent items, their tag
    /// profile and what is trending. Uses [`Ask::user`].
    ForUser,
    /// Cross-sell for a whole basket; the basket's items are never returned.
    Cart {
        /// Item ids in the cart.
        items: Vec<String>,
    },
    /// Follow-ups to the user's last basket, excluding everything they bought. Uses
    /// [`Ask::user`].
    AfterPurchase,
    /// Re-rank a search result list for the query keywords and (with [`Ask::user`]) the user.
    SearchRerank {
        /// The result list, in the search engine's order.
        items: Vec<String>,
        /// The query's words.
        keywords: Vec<String>,
    },
    /// Time-decayed popularity; use [`Filter::category`] for "trending in kitchen".
    Trending,
    /// A gift guide: items tagged `for:<recipient>`, best sellers and best rated first. Combine
    /// with a price range in the filter.
    Gift {
        /// Who it is for, e.g. `parent` (matches the tag `for:parent`).
        recipient: String,
    },
}

impl Scenario {
    /// The scenario's name as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Similar { .. } => "similar",
            Scenario::Profile { .. } => "profile",
            Scenario::Substitutes { .. } => "substitutes",
            Scenario::Complements { .. } => "complements",
            Scenario::Together { .. } => "together",
            Scenario::Viewed { .. } => "viewed",
            Scenario::ForUser => "for-user",
            Scenario::Cart { .. } => "cart",
            Scenario::AfterPurchase => "after-purchase",
            Scenario::SearchRerank { .. } => "search-rerank",
            Scenario::Trending => "trending",
            Scenario::Gift { .. } => "gift",
        }
    }
}

/// Largest boost factor. With [`MAX_BOOSTS`] of them a score grows by at most 1e24, far
/// inside f32: a factor like 3e38 made scores infinite, and the order of infinite scores is
/// arbitrary.
pub const MAX_BOOST: f32 = 1_000.0;
/// Smallest boost factor (a demotion to a thousandth).
pub const MIN_BOOST: f32 = 0.001;
/// Most boosts one ask may carry.
pub const MAX_BOOSTS: usize = 8;

/// A campaign rule: multiply the score of items carrying `tag` by `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boost {
    /// The tag, e.g. `season:christmas`.
    pub tag: String,
    /// The multiplier, [`MIN_BOOST`] to [`MAX_BOOST`]; below 1 demotes.
    pub factor: f32,
}

/// A scenario query: the scenario plus the options every scenario takes. Build with
/// [`Ask::new`] and the setters; run with [`crate::Store::recommend`] or [`crate::View::recommend`].
///
/// ```
/// use recostore::{Ask, Scenario};
/// use recostore::{Event, Item, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.upsert_items(&[
///     Item::new("tent", [("category:outdoor", 1.0)]),
///     Item::new("pegs", [("category:outdoor", 1.0)]),
///     Item::new("mug", [("category:kitchen", 1.0)]),
/// ])?;
/// store.record_events(&[
///     Event::purchase("u1", "tent", 1, 120.0, 1_000).session("order-1"),
///     Event::purchase("u1", "pegs", 1, 5.0, 1_000).session("order-1"),
/// ])?;
/// let recs = store.recommend(&Ask::new(Scenario::Together { item: "tent".into() }))?;
/// assert_eq!(recs[0].id, "pegs");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    /// The question.
    #[serde(flatten)]
    pub scenario: Scenario,
    /// Who is asking. Needed by `for-user` and `after-purchase`; used by the exclusions,
    /// and by `search-rerank` for personalisation.
    #[serde(default)]
    pub user: Option<String>,
    /// How many results (at most [`MAX_K`]). Default 10.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Which items may be returned.
    #[serde(default)]
    pub filter: Filter,
    /// Leave out what the user already bought.
    #[serde(default)]
    pub exclude_purchased: bool,
    /// Leave out everything the user already showed interest in.
    #[serde(default)]
    pub exclude_seen: bool,
    /// MMR diversity over categories: `Some(λ)` with λ in 0..=1 (1 = pure relevance,
    /// 0.7 is a good start). `None` (default) keeps the relevance order.
    #[serde(default)]
    pub diversity: Option<f32>,
    /// Campaign boosts.
    #[serde(default)]
    pub boosts: Vec<Boost>,
    /// The user is a member: members-only items go first.
    #[serde(default)]
    pub members_first: bool,
    /// The page slot asking (`home`, `cart`…): a slot routed with
    /// [`crate::plugin::Plugins::set_slot`] picks the ranking strategy by A/B weight, and
    /// the answer counts towards that variant's CTR and conversion. An unrouted slot is
    /// ranked by the built-in ranker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Rank with this plugin (or `builtin`), whatever the slot's routing says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Leave out items shown to [`Ask::user`] less than this many seconds before the ask's
    /// time (see [`Ask::not_shown_within`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_shown_within_secs: Option<u64>,
    /// Leave out items shown to [`Ask::user`] `times` times or more within the window (see
    /// [`Ask::cap`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<ShowCap>,
    /// Demote items [`Ask::user`] was shown before instead of leaving them out (see
    /// [`Ask::demote_shown`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demote_shown: bool,
    /// The ask's time in seconds since the epoch: what the exposure windows count back from,
    /// and the time of the impression a served answer records. Default: the store's clock
    /// (the newest event time), so a history replayed from 2011 stays in 2011. A shop whose
    /// events are sparse should pass the wall clock. No later than the store accepts events
    /// ([`crate::Config::future_tolerance_secs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Page through the answer (see [`Ask::paged`]): the answer is the first `k` of a list
    /// ranked [`crate::Config::page_depth`] deep, with a cursor to the next page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paged: bool,
    /// The page a previous answer's `next_cursor` points at (see [`Ask::cursor`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The page view this ask is a module of (see [`Ask::page_view`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_view: Option<String>,
}

/// A frequency cap: an item shown `times` times or more within `within_secs` seconds is left
/// out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowCap {
    /// Shows allowed in the window, at least 1 and at most `Config::exposure_memory`.
    pub times: u32,
    /// The window in seconds, at least 1.
    pub within_secs: u64,
}

fn default_k() -> usize {
    10
}

/// [`Ask`]'s own fields, beside `scenario` and the scenario's; `from_json` refuses any other
/// (a test checks the list against what serde writes).
const ASK_FIELDS: [&str; 17] = [
    "user",
    "k",
    "filter",
    "exclude_purchased",
    "exclude_seen",
    "diversity",
    "boosts",
    "members_first",
    "slot",
    "strategy",
    "not_shown_within_secs",
    "cap",
    "demote_shown",
    "at",
    "paged",
    "cursor",
    "page_view",
];

impl Ask {
    /// Ask `scenario` with the defaults.
    pub fn new(scenario: Scenario) -> Ask {
        Ask {
            scenario,
            user: None,
            k: 10,
            filter: Filter::default(),
            exclude_purchased: false,
            exclude_seen: false,
            diversity: None,
            boosts: Vec::new(),
            members_first: false,
            slot: None,
            strategy: None,
            not_shown_within_secs: None,
            cap: None,
            demote_shown: false,
            at: None,
            paged: false,
            cursor: None,
            page_view: None,
        }
    }

    /// Page through the answer: it is ranked once, [`crate::Config::page_depth`] deep, on
    /// this instant of the store, and the answer is its first `k` with a
    /// [`Served::next_cursor`]. Pages asked with that cursor ([`Ask::cursor`]) are the next
    /// slices of the same list: laid end to end they are the one long answer, whatever was
    /// written in between. A/B and interleaving figures count the first page's impressions.
    pub fn paged(mut self) -> Self {
        self.paged = true;
        self
    }

    /// Ask for the page `cursor` (a previous answer's [`Served::next_cursor`]) points at.
    /// The ask must be the first page's, but for `k`; a cursor lasts
    /// [`crate::Config::cursor_ttl_secs`] and is known only to the process that gave it.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Make this ask a module of page view `id` (one home page with several rows, say): no
    /// item is shown by two asks of the same view. Asks of one view run one at a time. A
    /// view lasts [`crate::Config::cursor_ttl_secs`] after its first ask.
    pub fn page_view(mut self, id: impl Into<String>) -> Self {
        self.page_view = Some(id.into());
        self
    }

    /// Leave out what [`Ask::user`] was shown less than `window` ago ("don't show me the same
    /// items again"): a refresh or the next visit gets the next items instead. Counted from
    /// [`Ask::at`], in whole seconds, over the shows the store remembers
    /// ([`crate::Config::exposure_memory`]).
    pub fn not_shown_within(mut self, window: std::time::Duration) -> Self {
        self.not_shown_within_secs = Some(window.as_secs());
        self
    }

    /// A frequency cap: leave out what [`Ask::user`] was shown `times` times or more within
    /// `window`.
    pub fn cap(mut self, times: u32, window: std::time::Duration) -> Self {
        self.cap = Some(ShowCap {
            times,
            within_secs: window.as_secs(),
        });
        self
    }

    /// Demote what [`Ask::user`] was shown before instead of leaving it out: each item's
    /// score is divided by `1 + Σ 2^(−age / half-life)` over its shows
    /// ([`crate::Config::exposure_half_life_secs`]), and the result says so
    /// ([`Reason::ShownBefore`]).
    pub fn demote_shown(mut self) -> Self {
        self.demote_shown = true;
        self
    }

    /// Set the ask's time (see [`Ask::at`]).
    pub fn at(mut self, ts: u64) -> Self {
        self.at = Some(ts);
        self
    }

    /// Whether the ask reads the exposure memory.
    pub(crate) fn uses_exposure(&self) -> bool {
        self.not_shown_within_secs.is_some() || self.cap.is_some() || self.demote_shown
    }

    /// Ask from page slot `slot` (see [`Ask::slot`]).
    pub fn slot(mut self, slot: impl Into<String>) -> Self {
        self.slot = Some(slot.into());
        self
    }

    /// Rank with strategy `name` (see [`Ask::strategy`]).
    pub fn strategy(mut self, name: impl Into<String>) -> Self {
        self.strategy = Some(name.into());
        self
    }

    /// Set the asking user.
    pub fn user(mut self, u: impl Into<String>) -> Self {
        self.user = Some(u.into());
        self
    }
    /// Set `k`.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
    /// Set the filter.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = f;
        self
    }
    /// Leave out the user's purchases.
    pub fn exclude_purchased(mut self) -> Self {
        self.exclude_purchased = true;
        self
    }
    /// Leave out everything the user has seen.
    pub fn exclude_seen(mut self) -> Self {
        self.exclude_seen = true;
        self
    }
    /// Diversify with MMR weight `lambda`.
    pub fn diversity(mut self, lambda: f32) -> Self {
        self.diversity = Some(lambda);
        self
    }
    /// Add a campaign boost.
    pub fn boost(mut self, tag: impl Into<String>, factor: f32) -> Self {
        self.boosts.push(Boost {
            tag: tag.into(),
            factor,
        });
        self
    }
    /// Put members-only items first.
    pub fn members_first(mut self) -> Self {
        self.members_first = true;
        self
    }

    /// An ask from JSON (the admin socket's `query`, a file), strictly: an unknown field of the
    /// ask or of its filter is an error naming it and the closest valid field, and a value of
    /// the wrong type names its field (`k: invalid type: string "3", expected usize`). Plain
    /// `serde_json::from_value` ignores unknown fields of the ask, since its scenario is
    /// flattened into it.
    pub fn from_json(v: serde_json::Value) -> Result<Ask> {
        let invalid = |reason: String| Error::InvalidQuery { reason };
        let scenario: Scenario = serde_path_to_error::deserialize(&v)
            .map_err(|e| invalid(crate::fields::explain(&e.to_string())))?;
        // The scenario's own fields are what serde writes for it.
        let shape = serde_json::to_value(&scenario).unwrap_or_default();
        let mut valid: Vec<&str> = shape
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        valid.extend(ASK_FIELDS);
        crate::fields::check_keys("the query", &v, &valid).map_err(invalid)?;
        serde_path_to_error::deserialize(&v)
            .map_err(|e| invalid(crate::fields::explain(&e.to_string())))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidQuery { reason });
        if self.k > MAX_K {
            return bad(format!("k = {} is above the limit of {MAX_K}", self.k));
        }
        if let Some(l) = self.diversity {
            if !(0.0..=1.0).contains(&l) {
                return bad(format!("diversity {l} must be between 0 and 1"));
            }
        }
        if let Some(b) = self
            .boosts
            .iter()
            .find(|b| !(MIN_BOOST..=MAX_BOOST).contains(&b.factor))
        {
            return bad(format!(
                "boost factor {} for `{}` must be between {MIN_BOOST} and {MAX_BOOST}",
                b.factor, b.tag
            ));
        }
        if self.boosts.len() > MAX_BOOSTS {
            return bad(format!(
                "{} boosts, the limit is {MAX_BOOSTS}; merge the rules for one tag into one",
                self.boosts.len()
            ));
        }
        self.filter.validate()
    }

    /// The checks that need the store's configuration: the exposure options against the
    /// memory, and the ask's time against the clock check events get.
    pub(crate) fn validate_with(&self, cfg: &Config) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidQuery { reason });
        if self.cursor.is_some() && self.paged {
            return bad(
                "an ask has either a cursor (a later page) or paged (the first page), not both"
                    .to_string(),
            );
        }
        if self.paged && self.page_view.is_some() {
            return bad(
                "a paged ask cannot be a module of a page view: its later pages are slices of a \
                 list ranked once, which the view's other modules cannot leave out of; page \
                 the module without page_view"
                    .to_string(),
            );
        }
        if self.cursor.is_some() && self.page_view.is_some() {
            return bad(
                "a page view leaves out what its other modules showed, which would cut items \
                 out of a cursor's pages; page a module without page_view"
                    .to_string(),
            );
        }
        if let Some(v) = &self.page_view {
            if v.is_empty() || v.len() > crate::model::MAX_ID_BYTES {
                return bad(format!(
                    "page_view must be 1 to {} bytes",
                    crate::model::MAX_ID_BYTES
                ));
            }
        }
        if let Some(at) = self.at {
            let latest = crate::event::latest_event_time(cfg.future_tolerance_secs);
            if at > latest {
                return bad(format!(
                    "at = {at} is later than this machine's clock allows ({latest}, \
                     Config::future_tolerance_secs); give the time in seconds since the epoch"
                ));
            }
        }
        if !self.uses_exposure() {
            return Ok(());
        }
        if self.user.is_none() {
            return bad(
                "not_shown_within, cap and demote_shown read what the user was shown; \
                 set Ask::user"
                    .to_string(),
            );
        }
        if cfg.exposure_memory == 0 {
            return bad(
                "the store keeps no exposure memory (Config::exposure_memory = 0); \
                 open it with a memory to use not_shown_within, cap or demote_shown"
                    .to_string(),
            );
        }
        if self.not_shown_within_secs == Some(0) {
            return bad("not_shown_within must be at least one second".to_string());
        }
        if let Some(c) = self.cap {
            if c.times == 0 || c.within_secs == 0 {
                return bad(format!(
                    "cap {}/{}s: allow at least one show in a window of at least one second",
                    c.times, c.within_secs
                ));
            }
            if c.times as usize > cfg.exposure_memory {
                return bad(format!(
                    "cap of {} shows can never be reached: the store remembers {} shows per \
                     user (Config::exposure_memory); lower the cap or raise the memory",
                    c.times, cfg.exposure_memory
                ));
            }
        }
        Ok(())
    }

    /// The asking user's dense id, or an error naming the scenario that needs one. A name the
    /// store does not hold is a new visitor (`None`) when `unknown_is_new`, else `NotFound`.
    pub(crate) fn user_id(
        &self,
        snap: &Snapshot,
        needed: bool,
        unknown_is_new: bool,
    ) -> Result<Option<u32>> {
        let Some(name) = &self.user else {
            if needed {
                return Err(Error::InvalidQuery {
                    reason: format!(
                        "scenario {} needs a user; set Ask::user to the shopper",
                        self.scenario.name()
                    ),
                });
            }
            return Ok(None);
        };
        match snap.user_id(name).filter(|&u| snap.user_row(u).is_some()) {
            Some(u) => Ok(Some(u)),
            None if unknown_is_new => Ok(None),
            None => Err(Error::NotFound {
                what: "user",
                id: display_id(name),
            }),
        }
    }
}

/// The dense id of a live item, or `NotFound`.
pub(crate) fn item_id(snap: &Snapshot, name: &str) -> Result<u32> {
    snap.item_id(name)
        .filter(|&i| snap.item_row(i).is_some())
        .ok_or_else(|| Error::NotFound {
            what: "item",
            id: display_id(name),
        })
}

/// Run `ask` against one snapshot, ranked by the strategy chosen for it.
pub(crate) fn run(env: &Env<'_>, snap: &Snapshot, ask: &Ask) -> Result<Served> {
    Ok(run_with_shadows(env, snap, ask)?.0)
}

/// [`run`], also returning the slot's shadows sampled for this answer: the caller queues
/// their rankings ([`shadow`]) off the request path.
pub(crate) fn run_with_shadows(
    env: &Env<'_>,
    snap: &Snapshot,
    ask: &Ask,
) -> Result<(Served, Vec<ShadowPick>)> {
    ask.validate()?;
    ask.validate_with(env.config)?;
    // Every shop has new visitors: an id the store has not seen yet is a user with no history
    // (cold start), not an error. Only the receipt page needs a known buyer.
    let user = ask.user_id(
        snap,
        matches!(ask.scenario, Scenario::ForUser | Scenario::AfterPurchase),
        !matches!(ask.scenario, Scenario::AfterPurchase),
    )?;
    let plugins = env.plugins;
    let mut choice = plugins.choose(
        ask.strategy.as_deref(),
        ask.slot.as_deref(),
        ask.user.as_deref(),
    )?;
    let shadows = std::mem::take(&mut choice.shadows);
    let cfg = env.config;
    fn plug<'a>(
        cfg: &'a crate::config::Config,
        user: Option<u32>,
        c: &'a Choice,
    ) -> Option<rank::Plug<'a>> {
        c.version.is_some().then_some(rank::Plug {
            cfg,
            user,
            choice: c,
        })
    }
    let fallback = |fault: &Option<crate::plugin::Fault>, c: &Choice| match (fault, c.disabled) {
        (Some(f), _) => Some(f.to_string()),
        (None, true) => Some("disabled".to_string()),
        (None, false) => None,
    };
    let version = |fault: &Option<crate::plugin::Fault>, c: &Choice| match fault {
        None => c.version.as_ref().map(|v| v.number()),
        Some(_) => None,
    };
    let (items, fault) = candidates_and_rank(env, snap, ask, user, plug(cfg, user, &choice))?;
    let mut ranked_by = RankedBy {
        strategy: choice.strategy.clone(),
        version: version(&fault, &choice),
        slot: choice.slot.clone(),
        fallback: fallback(&fault, &choice),
        interleaved: None,
    };
    let served = match choice.partner.as_deref() {
        None => {
            let shown = env.shown.unwrap_or(items.len());
            plugins.served(
                &choice,
                ask.user.as_deref(),
                items.iter().take(shown).map(|r| r.id.clone()).collect(),
                fault.is_some(),
            );
            items
        }
        Some(b) => {
            // Both teams rank the same candidates; the merge decides who shows what.
            let (other, b_fault) = candidates_and_rank(env, snap, ask, user, plug(cfg, user, b))?;
            let mut coins = crate::splitmix::SplitMix64(choice.seed);
            let ids = |l: &[Recommendation]| l.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            let merged =
                crate::plugin::interleave::team_draft(&ids(&items), &ids(&other), ask.k, || {
                    coins.next_u64() & 1 == 1
                });
            let mut lists = [items.into_iter(), other.into_iter()].map(|l| {
                l.map(|r| (r.id.clone(), r))
                    .collect::<std::collections::HashMap<_, _>>()
            });
            let (mut out, mut teams) = (Vec::with_capacity(merged.len()), Vec::new());
            for (id, team) in merged {
                if let Some(r) = lists[usize::from(team)].remove(&id) {
                    out.push(r);
                    teams.push(team);
                }
            }
            ranked_by.interleaved = Some(strategy::Interleaved {
                strategy: b.strategy.clone(),
                version: version(&b_fault, b),
                fallback: fallback(&b_fault, b),
                teams: teams
                    .iter()
                    .map(|&t| {
                        if t == 0 {
                            choice.strategy.clone()
                        } else {
                            b.strategy.clone()
                        }
                    })
                    .collect(),
            });
            let shown = env.shown.unwrap_or(out.len());
            teams.truncate(shown);
            plugins.served_interleaved(
                &choice,
                ask.user.as_deref(),
                out.iter().take(shown).map(|r| r.id.clone()).collect(),
                teams,
                [fault.is_some(), b_fault.is_some()],
            );
            if let Some(v) = &b.version {
                match b_fault {
                    Some(_) => plugins.after_fault(v),
                    None => plugins.after_call(v),
                }
            }
            out
        }
    };
    // After the answer is counted, so that a guardrail judging CTR sees its impressions.
    if let Some(v) = &choice.version {
        match fault {
            Some(_) => plugins.after_fault(v),
            None => plugins.after_call(v),
        }
    }
    Ok((
        Served {
            items: served,
            ranked_by,
            impression: None,
            next_cursor: None,
        },
        shadows,
    ))
}

/// Rank `ask` for shadow `pick` on the same snapshot, and compare its list with `served`
/// (the ids that were shown). Runs on the shadow worker, never on the request path.
pub(crate) fn shadow(
    env: &Env<'_>,
    snap: &Snapshot,
    ask: &Ask,
    pick: &ShadowPick,
    served: &[String],
) -> std::result::Result<Comparison, crate::plugin::Fault> {
    let user = ask.user_id(snap, false, true).map_err(|e| host_fault(&e))?;
    let choice = Choice {
        version: pick.version.clone(),
        strategy: pick.strategy.clone(),
        slot: ask.slot.clone(),
        disabled: false,
        partner: None,
        shadows: Vec::new(),
        seed: 0,
        shadow: true,
    };
    let plug = choice.version.is_some().then_some(rank::Plug {
        cfg: env.config,
        user,
        choice: &choice,
    });
    let (items, fault) =
        candidates_and_rank(env, snap, ask, user, plug).map_err(|e| host_fault(&e))?;
    if let Some(f) = fault {
        return Err(f);
    }
    let dense = |names: &mut dyn Iterator<Item = &str>| -> Vec<u32> {
        names.filter_map(|n| snap.item_id(n)).collect()
    };
    let mine = dense(&mut items.iter().map(|r| r.id.as_str()));
    let theirs = dense(&mut served.iter().map(String::as_str));
    let (overlap, tau) = crate::plugin::shadow::compare(&theirs, &mine);
    // What neither list may show: checked here against the ask, not taken from the ranking
    // tail that should have removed it.
    let filter = crate::search::filter::Compiled::new(snap, &ask.filter, None);
    let purchased: Vec<u32> = match user.and_then(|u| snap.activity.user(u)) {
        Some(u) if ask.exclude_purchased || matches!(ask.scenario, Scenario::AfterPurchase) => {
            u.purchased.to_vec()
        }
        _ => Vec::new(),
    };
    let bad = |ids: &[u32]| {
        let mut b = crate::plugin::shadow::Bad::default();
        for &id in ids {
            let empty = ask.filter.in_stock && stock(snap, id) == Some(0);
            b.out_of_stock += u64::from(empty);
            b.filtered += u64::from(!empty && !filter.allows(snap, id));
            b.purchased += u64::from(purchased.contains(&id));
        }
        b
    };
    Ok(Comparison {
        overlap,
        tau,
        would_show: bad(&mine),
        served_shows: bad(&theirs),
    })
}

/// A store error met while ranking for a shadow, as the fault it is counted as.
fn host_fault(e: &Error) -> crate::plugin::Fault {
    crate::plugin::Fault::Trap {
        reason: format!("the scenario failed for the shadow: {e}"),
    }
}

/// The stock of live item `id`.
fn stock(snap: &Snapshot, id: u32) -> Option<u32> {
    match snap.item_row(id)? {
        crate::snapshot::Row::Delta(r) => Some(r.stock),
        crate::snapshot::Row::Segment(i) => snap
            .seg()
            .items
            .stock
            .get(i as usize)
            .map(|s| s.to_native()),
    }
}

/// Gather the scenario's candidates and run the ranking tail.
fn candidates_and_rank(
    env: &Env<'_>,
    snap: &Snapshot,
    ask: &Ask,
    user: Option<u32>,
    plug: Option<rank::Plug<'_>>,
) -> Result<(Vec<Recommendation>, Option<crate::plugin::Fault>)> {
    let cfg = env.config;
    let mut excluded: Vec<u32> = Vec::new();
    if let Some(u) = user.and_then(|u| snap.activity.user(u)) {
        if ask.exclude_seen {
            excluded.extend_from_slice(&u.seen);
        }
        if ask.exclude_purchased || matches!(ask.scenario, Scenario::AfterPurchase) {
            excluded.extend_from_slice(&u.purchased);
        }
    }
    let shown = if ask.uses_exposure() {
        shown::read(snap, ask, user, cfg.exposure_half_life_secs)
    } else {
        shown::Shown::default()
    };
    excluded.extend_from_slice(&shown.excluded);
    excluded.sort_unstable();
    excluded.dedup();
    if ask.k == 0 {
        return Ok((Vec::new(), None));
    }
    let demoted = &shown.demoted;
    let cands = match &ask.scenario {
        Scenario::Similar { .. } | Scenario::Profile { .. } => {
            return personal::similarity(snap, ask, &excluded, demoted, plug)
        }
        Scenario::Substitutes { item } => {
            let id = item_id(snap, item)?;
            excluded.push(id);
            excluded.sort_unstable();
            relations::substitutes(snap, ask, item, id, &excluded)?
        }
        Scenario::Complements { item } => {
            let id = item_id(snap, item)?;
            excluded.push(id);
            excluded.sort_unstable();
            relations::complements(snap, item, id, &excluded)?
        }
        Scenario::Together { item } => {
            let id = item_id(snap, item)?;
            excluded.push(id);
            cooccur::related(snap, ask, id, crate::activity::Relation::Bought, &excluded)
        }
        Scenario::Viewed { item } => {
            let id = item_id(snap, item)?;
            excluded.push(id);
            cooccur::related(snap, ask, id, crate::activity::Relation::Viewed, &excluded)
        }
        Scenario::Cart { items } => {
            let ids = items
                .iter()
                .map(|n| item_id(snap, n))
                .collect::<Result<Vec<u32>>>()?;
            excluded.extend_from_slice(&ids);
            excluded.sort_unstable();
            if ids.is_empty() && personal::no_history(snap, user) {
                // An empty cart of a new visitor: what the home page shows them.
                let history = || env.history(snap);
                personal::for_user(snap, cfg, ask, user, &excluded, history)?
            } else {
                let history = env.history(snap);
                personal::cart(snap, cfg, ask, &ids, user, &excluded, &history)
            }
        }
        Scenario::AfterPurchase => {
            let basket = user
                .and_then(|u| snap.activity.user(u))
                .and_then(|u| u.last_basket)
                .map(|b| snap.activity.bought.basket(b).to_vec())
                .unwrap_or_default();
            excluded.extend_from_slice(&basket);
            cooccur::basket(snap, &basket)
        }
        Scenario::ForUser => {
            let history = || env.history(snap);
            personal::for_user(snap, cfg, ask, user, &excluded, history)?
        }
        Scenario::SearchRerank { items, keywords } => {
            catalogue::search_rerank(snap, cfg, user, items, keywords)
        }
        Scenario::Trending => {
            let depth = plug.as_ref().map(|p| p.cfg.plugins.rerank_depth);
            catalogue::trending(snap, cfg, ask, &excluded, catalogue::pool(ask, depth))
        }
        Scenario::Gift { recipient } => catalogue::gift(snap, cfg, ask, recipient)?,
    };
    Ok(rank::finish(snap, ask, cands, &excluded, demoted, plug))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ASK_FIELDS` is what serde writes for an ask with every optional field set, less the
    /// scenario's: a field added to `Ask` and not to the list fails here, not in production.
    #[test]
    fn ask_fields_match_serde() {
        let mut ask = Ask::new(Scenario::Trending);
        ask.slot = Some("home".into());
        ask.strategy = Some("a9".into());
        ask.user = Some("u".into());
        ask.diversity = Some(0.5);
        ask = ask
            .not_shown_within(std::time::Duration::from_secs(60))
            .cap(2, std::time::Duration::from_secs(60))
            .demote_shown()
            .at(5)
            .paged()
            .cursor("c")
            .page_view("v");
        let v = serde_json::to_value(&ask).unwrap_or_default();
        let mut got: Vec<&str> = v
            .as_object()
            .map(|m| {
                m.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "scenario")
                    .collect()
            })
            .unwrap_or_default();
        got.sort_unstable();
        let mut want = ASK_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn from_json_refuses_unknown_fields_and_names_wrong_types() {
        let err = |v: serde_json::Value| match Ask::from_json(v) {
            Err(e) => e.to_string(),
            Ok(a) => panic!("accepted: {a:?}"),
        };
        let e = err(serde_json::json!({"scenario": "trending", "kk": 3}));
        assert!(e.contains("`kk`") && e.contains("did you mean `k`?"), "{e}");
        let e = err(serde_json::json!({"scenario": "trending", "filter": {"max_prise": 1}}));
        assert!(
            e.contains("`max_prise`") && e.contains("did you mean `max_price`?"),
            "{e}"
        );
        let e = err(serde_json::json!({"scenario": "together", "item": "a", "items": ["b"]}));
        assert!(
            e.contains("`items`") && e.contains("did you mean `item`?"),
            "{e}"
        );
        let e = err(serde_json::json!({"scenario": "trending", "k": "3"}));
        assert!(e.starts_with("invalid query: k: invalid type"), "{e}");
        let e = err(serde_json::json!({"scenario": "for_user"}));
        assert!(e.contains("did you mean `for-user`?"), "{e}");
        let ok = Ask::from_json(serde_json::json!({"scenario": "cart", "items": ["a"], "k": 3}));
        assert!(matches!(ok, Ok(a) if a.k == 3), "valid asks pass");
    }
}
