//! Behaviour events: what a shopper did, as the app reports it.
//!
//! An event names a user, usually an item, a time and optionally a session. Recording one
//! appends it to the durable event log and updates, in the same atomic batch, the user's derived
//! tags and counters, the item's statistics and the co-occurrence lists (see [`crate::activity`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{display_id, MAX_ID_BYTES, MAX_TEXT_BYTES};

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES
}

/// Largest number of items one impression event may list.
pub const MAX_IMPRESSION_ITEMS: usize = 1_000;
/// Most units one purchase event may carry. Spend is quantity × price, so a typo of 1e30
/// units would otherwise make one customer the biggest spender of all; real order lines are
/// far below this (Online Retail's largest is 80,995).
pub const MAX_QUANTITY: u32 = 1_000_000;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The user looked at the item's page.
    View,
    /// The user clicked the item in a list.
    Click,
    /// The user searched. Search events carry no item.
    Search {
        /// What they typed.
        query: String,
    },
    /// The user saved the item to a wish list.
    Favourite,
    /// The user put the item in the cart.
    Cart,
    /// The user bought `qty` units at `price` each.
    Purchase {
        /// Units bought (at least 1).
        qty: u32,
        /// Unit price paid; finite and non-negative.
        price: f32,
    },
    /// The user rated the item, 0 to 5 stars.
    Rating {
        /// The rating, finite, in `0.0..=5.0`.
        value: f32,
    },
    /// The user wrote a review.
    Review,
    /// The user was shown `items` in `slot`, ranked by `strategy`. The items are listed here,
    /// so the event's own `item` is usually left empty (it is recorded if given).
    Impression {
        /// Where on the page (`home`, `cart`, ...).
        slot: String,
        /// Which strategy ranked the list.
        strategy: String,
        /// The items shown, in order.
        items: Vec<String>,
    },
}

impl EventKind {
    /// The lower-case name used in files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::Search { .. } => "search",
            EventKind::Favourite => "favourite",
            EventKind::Cart => "cart",
            EventKind::Purchase { .. } => "purchase",
            EventKind::Rating { .. } => "rating",
            EventKind::Review => "review",
            EventKind::Impression { .. } => "impression",
        }
    }

    /// Whether this kind must name an item.
    pub fn needs_item(&self) -> bool {
        !matches!(
            self,
            EventKind::Search { .. } | EventKind::Impression { .. }
        )
    }
}

/// One behaviour event. Build with the constructors, then [`Event::session`] if the app tracks
/// sessions (without one, events of a user less than `Config::session_gap_secs` apart share an
/// implicit session).
///
/// ```
/// use recostore::Event;
/// let e = Event::purchase("user-9", "mug-red", 2, 7.5, 1_700_000_000).session("order-77");
/// assert_eq!(e.kind.name(), "purchase");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The user's id. A user the store has not seen is created (with no explicit tags).
    pub user: String,
    /// The item's id; must already be in the store. `None` only for search and impressions.
    pub item: Option<String>,
    /// What happened, with its payload.
    #[serde(flatten)]
    pub kind: EventKind,
    /// When, in seconds since the Unix epoch.
    pub ts: u64,
    /// The app's session or order id. Purchases in one session form one basket.
    pub session: Option<String>,
}

impl Event {
    fn on(user: impl Into<String>, item: impl Into<String>, kind: EventKind, ts: u64) -> Event {
        Event {
            user: user.into(),
            item: Some(item.into()),
            kind,
            ts,
            session: None,
        }
    }

    /// A product-page view.
    pub fn view(user: impl Into<String>, item: impl Into<String>, ts: u64) -> Event {
        Event::on(user, item, EventKind::View, ts)
    }

    /// A click on the item in a list.
    pub fn click(user: impl Into<String>, item: impl Into<String>, ts: u64) -> Event {
        Event::on(user, item, EventKind::Click, ts)
    }

    /// A wish-list save.
    pub fn favourite(user: impl Into<String>, item: impl Into<String>, ts: u64) -> Event {
        Event::on(user, item, EventKind::Favourite, ts)
    }

    /// An add-to-cart.
    pub fn cart(user: impl Into<String>, item: impl Into<String>, ts: u64) -> Event {
        Event::on(user, item, EventKind::Cart, ts)
    }

    /// A purchase of `qty` units at `price` each.
    pub fn purchase(
        user: impl Into<String>,
        item: impl Into<String>,
        qty: u32,
        price: f32,
        ts: u64,
    ) -> Event {
        Event::on(user, item, EventKind::Purchase { qty, price }, ts)
    }

    /// A star rating (0–5).
    pub fn rating(user: impl Into<String>, item: impl Into<String>, value: f32, ts: u64) -> Event {
        Event::on(user, item, EventKind::Rating { value }, ts)
    }

    /// A written review.
    pub fn review(user: impl Into<String>, item: impl Into<String>, ts: u64) -> Event {
        Event::on(user, item, EventKind::Review, ts)
    }

    /// A search for `query`.
    pub fn search(user: impl Into<String>, query: impl Into<String>, ts: u64) -> Event {
        Event {
            user: user.into(),
            item: None,
            kind: EventKind::Search {
                query: query.into(),
            },
            ts,
            session: None,
        }
    }

    /// `items` shown to the user in `slot`, ranked by `strategy`.
    pub fn impression(
        user: impl Into<String>,
        slot: impl Into<String>,
        strategy: impl Into<String>,
        items: Vec<String>,
        ts: u64,
    ) -> Event {
        Event {
            user: user.into(),
            item: None,
            kind: EventKind::Impression {
                slot: slot.into(),
                strategy: strategy.into(),
                items,
            },
            ts,
            session: None,
        }
    }

    /// Set the session (or order) id.
    pub fn session(mut self, s: impl Into<String>) -> Event {
        self.session = Some(s.into());
        self
    }

    /// Check everything that does not need the store. `index` is the event's position in its
    /// batch, for the message; `latest` is the latest time accepted (see
    /// [`crate::Config::future_tolerance_secs`] and [`latest_event_time`]).
    pub(crate) fn validate(&self, index: usize, latest: u64) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidEvent {
                index,
                user: display_id(&self.user),
                reason,
            })
        };
        if !id_ok(&self.user) {
            return bad(format!("the user id must be 1 to {MAX_ID_BYTES} bytes"));
        }
        if self.ts > latest {
            return bad(format!(
                "its time {} is in the future (this machine's clock allows up to {latest}); \
                 times are seconds since 1970, not milliseconds. A clock ahead of this one by \
                 more than Config::future_tolerance_secs is refused, because decay counts from \
                 the newest event and one far-future event would decay every profile",
                self.ts
            ));
        }
        match (&self.item, self.kind.needs_item()) {
            (None, true) => return bad(format!("a {} event must name an item", self.kind.name())),
            (Some(i), _) if !id_ok(i) => {
                return bad(format!(
                    "item id `{}` must be 1 to {MAX_ID_BYTES} bytes",
                    display_id(i)
                ))
            }
            _ => {}
        }
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.len() > MAX_ID_BYTES)
        {
            return bad(format!(
                "the session id is longer than {MAX_ID_BYTES} bytes"
            ));
        }
        match &self.kind {
            EventKind::Purchase { qty, price } => {
                if *qty == 0 {
                    return bad("a purchase needs qty >= 1".into());
                }
                if *qty > MAX_QUANTITY {
                    return bad(format!(
                        "qty {qty} is over the {MAX_QUANTITY} units one purchase event may carry"
                    ));
                }
                if !price.is_finite() || *price < 0.0 {
                    return bad(format!("purchase price {price} must be finite and >= 0"));
                }
            }
            EventKind::Rating { value } if !(0.0..=5.0).contains(value) => {
                return bad(format!("rating {value} must be between 0 and 5"));
            }
            EventKind::Search { query } if query.len() > MAX_TEXT_BYTES => {
                return bad(format!(
                    "the search query is longer than {MAX_TEXT_BYTES} bytes"
                ));
            }
            EventKind::Impression {
                slot,
                strategy,
                items,
            } => {
                if slot.len() > MAX_ID_BYTES || strategy.len() > MAX_ID_BYTES {
                    return bad(format!(
                        "slot and strategy names are limited to {MAX_ID_BYTES} bytes"
                    ));
                }
                if items.len() > MAX_IMPRESSION_ITEMS {
                    return bad(format!(
                        "an impression lists {} items; the limit is {MAX_IMPRESSION_ITEMS}",
                        items.len()
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// An event as kept in the durable log: ids resolved to dense ids. The user is in the log key
/// and the time in the chunk entry (`crate::activity::log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    /// Dense item id, if the event names one.
    pub item: Option<u32>,
    /// What happened; impression items are dense ids, unknown ones left out.
    pub kind: StoredKind,
    /// Session id as given.
    pub session: Option<String>,
}

/// [`EventKind`] with dense ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum StoredKind {
    View,
    Click,
    Search(String),
    Favourite,
    Cart,
    Purchase {
        qty: u32,
        price: f32,
    },
    Rating(f32),
    Review,
    Impression {
        slot: String,
        strategy: String,
        items: Vec<u32>,
    },
}

impl StoredKind {
    /// Whether the event is part of a purchase basket.
    pub fn is_purchase(&self) -> bool {
        matches!(self, StoredKind::Purchase { .. })
    }

    /// Whether the event shows interest in its item (what "viewed together" and "seen" count).
    pub fn is_interest(&self) -> bool {
        !matches!(self, StoredKind::Search(_) | StoredKind::Impression { .. })
    }
}

/// The latest event time accepted now: this machine's clock plus `tolerance` seconds, or no
/// limit for `None`.
pub(crate) fn latest_event_time(tolerance: Option<u64>) -> u64 {
    let Some(t) = tolerance else {
        return u64::MAX;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_add(t)
}
