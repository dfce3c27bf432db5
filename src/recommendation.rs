//! What a query answers: [`Recommendation`]s and the [`Reason`]s that explain them. A leaf:
//! search produces recommendations, scenarios add reasons, and both depend on this module,
//! not on each other.

use serde::{Deserialize, Serialize};

/// One recommended item with the reason it was recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The item's id.
    pub id: String,
    /// Its title (may be empty).
    pub title: String,
    /// Similarity score under the query's [`crate::Similarity`].
    pub score: f32,
    /// The shared tags that contributed most, with each one's share of `score`, largest first.
    pub matched: Vec<(String, f32)>,
    /// Why else it was recommended: co-occurring items, popularity, boosts (scenario queries;
    /// empty for plain similarity queries, where `matched` says it all).
    pub reasons: Vec<Reason>,
}

/// Why an item was recommended, beyond the tags in [`Recommendation::matched`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// It matched the user's (or the query's) tag profile; `matched` lists the tags.
    Profile {
        /// Its similarity to the profile.
        similarity: f32,
    },
    /// Bought in the same basket as `with`.
    BoughtTogether {
        /// The item it goes with.
        with: String,
        /// Baskets holding both: exact when `exact`, otherwise a lower bound.
        support: u32,
        /// Whether the figures are exact. False only when the store has dropped some of
        /// `with`'s baskets to stay within `Config::cooccurrence_lines`; every figure is then
        /// a lower bound ("at least").
        exact: bool,
        /// When set, the figures count only the newest this many baskets of `with` (the
        /// blends walk each history item's newest baskets): `support` of them hold this item,
        /// `confidence` is `support / newest`, and `lift` compares that share with this item's
        /// share of all baskets. Unset: every basket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        newest: Option<u32>,
        /// P(this | with).
        confidence: f32,
        /// How much more often than chance.
        lift: f32,
    },
    /// Viewed (shown interest in) in the same session as `with`.
    ViewedTogether {
        /// The item it goes with.
        with: String,
        /// Sessions holding both: exact when `exact`, otherwise a lower bound.
        support: u32,
        /// Whether the figures are exact (see [`Reason::BoughtTogether`]).
        exact: bool,
        /// The newest sessions of `with` counted, if not all (see [`Reason::BoughtTogether`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        newest: Option<u32>,
        /// P(this | with).
        confidence: f32,
        /// How much more often than chance.
        lift: f32,
    },
    /// It can replace `with` ([`crate::Scenario::Substitutes`]).
    Substitute {
        /// The item it replaces.
        with: String,
        /// Cosine of the two items' tags.
        tag_match: f32,
        /// Sessions in which both were viewed.
        viewed_together: u32,
        /// When set, `viewed_together` counts only `with`'s newest this many sessions (it was
        /// viewed in more; see [`crate::SUBSTITUTE_SESSIONS`]). Unset: every session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewed_newest: Option<u32>,
        /// Baskets holding both.
        bought_together: u32,
        /// When set, `bought_together` counts only `with`'s newest this many baskets (see
        /// [`crate::SUBSTITUTE_BASKETS`]). Unset: every basket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bought_newest: Option<u32>,
        /// Whether both counts are exact (see [`Reason::BoughtTogether`]).
        exact: bool,
    },
    /// It completes `with` ([`crate::Scenario::Complements`]).
    Complement {
        /// The item it goes with.
        with: String,
        /// Baskets holding both.
        bought_together: u32,
        /// Whether the figures are exact (see [`Reason::BoughtTogether`]).
        exact: bool,
        /// P(this | with).
        confidence: f32,
        /// How much more often than chance they are bought together.
        lift: f32,
        /// Cosine of the two items' tags.
        tag_match: f32,
    },
    /// Liked by the same people as `with`: both are in the histories of `shared` users.
    LikedTogether {
        /// The item of the user's history it goes with.
        with: String,
        /// Users whose history holds both.
        shared: u32,
        /// Cosine of the two items' sets of users.
        similarity: f32,
    },
    /// It is popular now.
    Popular {
        /// Time-decayed popularity.
        popularity: f32,
        /// Shown because the user has no history yet (cold start: a new visitor, or an empty
        /// cart with nothing bought before), not because it goes with anything of theirs.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_history: bool,
    },
    /// Search keywords it matched (in tags or title).
    Keywords {
        /// The keywords.
        matched: Vec<String>,
    },
    /// A campaign boost applied.
    Boost {
        /// The boosted tag.
        tag: String,
        /// The factor.
        factor: f32,
    },
    /// A members-only item, shown first to a member.
    MembersOnly,
    /// Demoted because the user was shown it before ([`crate::Ask::demote_shown`]): its
    /// score was multiplied by `factor`, `1 / (1 + Σ 2^(−age / half-life))` over the shows
    /// remembered.
    ShownBefore {
        /// Shows remembered (at most `Config::exposure_memory` shows of all items are).
        times: u32,
        /// Seconds from the newest show to the ask's time.
        last_secs_ago: u64,
        /// The multiplier applied, in (0, 1).
        factor: f32,
    },
}

impl Reason {
    pub(crate) fn same_kind(&self, other: &Reason) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// How strong a reason of its kind is (which source an explanation names).
    pub(crate) fn strength(&self) -> f32 {
        match self {
            Reason::Profile { similarity } => *similarity,
            // More baskets together is the stronger explanation; confidence (at most 1)
            // breaks ties. Lift would favour one-offs between rarities.
            Reason::BoughtTogether {
                support,
                confidence,
                ..
            }
            | Reason::ViewedTogether {
                support,
                confidence,
                ..
            }
            | Reason::Complement {
                bought_together: support,
                confidence,
                ..
            } => *support as f32 + confidence.clamp(0.0, 1.0),
            Reason::Substitute { tag_match, .. } => *tag_match,
            Reason::LikedTogether { similarity, .. } => *similarity,
            Reason::Popular { popularity, .. } => *popularity,
            Reason::Keywords { matched } => matched.len() as f32,
            Reason::Boost { factor, .. } => *factor,
            Reason::MembersOnly => 1.0,
            Reason::ShownBefore { factor, .. } => *factor,
        }
    }
}

/// A span of seconds for a person, rounded down to its largest unit: `45 s`, `12 min`,
/// `3 h`, `2 d`.
fn ago(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3_599 => format!("{} min", secs / 60),
        3_600..=86_399 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// `n×`, or `at least n×` when the figure is a bound.
fn times(n: u32, exact: bool) -> String {
    if exact {
        format!("{n}×")
    } else {
        format!("at least {n}×")
    }
}

/// Below this support a reason's text leaves the lift out: one shared basket between two
/// rarities has a lift in the thousands, true and meaningless. The JSON keeps it.
pub const LIFT_MIN_SUPPORT: u32 = 3;

/// `lift x` (or `lift at least x` when it is a bound) behind `sep`, or nothing when the
/// support is below [`LIFT_MIN_SUPPORT`].
fn lift(sep: &str, x: f32, support: u32, exact: bool) -> String {
    match (support >= LIFT_MIN_SUPPORT, exact) {
        (false, _) => String::new(),
        (true, true) => format!("{sep}lift {x:.1}"),
        (true, false) => format!("{sep}lift at least {x:.1}"),
    }
}

impl std::fmt::Display for Reason {
    /// One line for a person: `bought with 85123A (457×, lift 3.1)`. A figure that is a lower
    /// bound says so (`at least 120×`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Profile { similarity } => write!(f, "matches the profile ({similarity:.2})"),
            Reason::BoughtTogether {
                with,
                support,
                exact,
                newest,
                lift: l,
                ..
            } => match newest {
                Some(n) => write!(
                    f,
                    "bought with {with} in {support} of its newest {n} baskets{}",
                    lift(" (", *l, *support, *exact)
                        + if *support >= LIFT_MIN_SUPPORT {
                            ")"
                        } else {
                            ""
                        }
                ),
                None => write!(
                    f,
                    "bought with {with} ({}{})",
                    times(*support, *exact),
                    lift(", ", *l, *support, *exact)
                ),
            },
            Reason::ViewedTogether {
                with,
                support,
                exact,
                newest,
                lift: l,
                ..
            } => match newest {
                Some(n) => write!(
                    f,
                    "viewed with {with} in {support} of its newest {n} sessions{}",
                    lift(" (", *l, *support, *exact)
                        + if *support >= LIFT_MIN_SUPPORT {
                            ")"
                        } else {
                            ""
                        }
                ),
                None => write!(
                    f,
                    "viewed with {with} ({}{})",
                    times(*support, *exact),
                    lift(", ", *l, *support, *exact)
                ),
            },
            Reason::Substitute {
                with,
                tag_match,
                viewed_together,
                viewed_newest,
                bought_together,
                bought_newest,
                exact,
            } => {
                let viewed = match viewed_newest {
                    Some(n) => format!("in {viewed_together} of its newest {n} sessions"),
                    None => times(*viewed_together, *exact),
                };
                let bought = match bought_newest {
                    Some(n) => format!("in {bought_together} of its newest {n} baskets"),
                    None => times(*bought_together, *exact),
                };
                write!(
                    f,
                    "substitute for {with}: tag match {tag_match:.2}, viewed in the same session {viewed}, bought together {bought}"
                )
            }
            Reason::Complement {
                with,
                bought_together,
                exact,
                lift: l,
                tag_match,
                ..
            } => write!(
                f,
                "complement to {with}: bought together {}{}, tag match {tag_match:.2}",
                times(*bought_together, *exact),
                lift(" (", *l, *bought_together, *exact)
                    + if *bought_together >= LIFT_MIN_SUPPORT {
                        ")"
                    } else {
                        ""
                    }
            ),
            Reason::LikedTogether {
                with,
                shared,
                similarity,
            } => write!(
                f,
                "liked by the same people as {with} ({shared} {}, cosine {similarity:.2})",
                if *shared == 1 { "user" } else { "users" }
            ),
            Reason::Popular {
                popularity,
                no_history,
            } => {
                write!(f, "popular ({popularity:.1})")?;
                if *no_history {
                    write!(f, "; no history yet")?;
                }
                Ok(())
            }
            Reason::Keywords { matched } => write!(f, "keywords {}", matched.join(" ")),
            Reason::Boost { tag, factor } => write!(f, "boost {tag} ×{factor}"),
            Reason::MembersOnly => write!(f, "members only"),
            Reason::ShownBefore {
                times,
                last_secs_ago,
                factor,
            } => write!(
                f,
                "shown {times} {} before, last {} ago (score ×{factor:.2})",
                if *times == 1 { "time" } else { "times" },
                ago(*last_secs_ago)
            ),
        }
    }
}
