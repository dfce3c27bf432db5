//! Stable pages and page views: what a shopper who scrolls, or a page with several rows,
//! needs from a store whose answers change with every write.
//!
//! **Pages.** A paged ask ([`crate::Ask::paged`]) is ranked once, [`crate::Config::page_depth`]
//! deep, on the view it was asked of; the answer is the first `k` and a cursor
//! ([`crate::Served::next_cursor`]). Each later page ([`crate::Ask::cursor`]) is the next slice
//! of that same list, so the pages laid end to end are exactly the one long answer: no page
//! repeats an item, none skips one that ranked above the cut, and writes in between change
//! nothing (the list was ranked on one snapshot). Ranking again per page would not do: a
//! scenario's top 20 is not its top 10 followed by something (the blends draw deeper pools
//! for a larger `k`), and a write between pages moves items across the cut.
//!
//! **What a cursor costs.** The list, in memory, until the cursor expires
//! ([`crate::Config::cursor_ttl_secs`]) or [`crate::Config::max_cursors`] newer ones push it
//! out; then it is refused as expired and the app starts again. Cursors live in the process:
//! a restart or another replica does not know them.
//!
//! **Page views.** The asks of one page view ([`crate::Ask::page_view`]: the rows of one
//! home page, say) never show an item twice: each ask leaves out what earlier asks of the view
//! showed, and asks of one view run one at a time, so two rows asked at once from two threads
//! still cannot both take an item.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::scenario::{Ask, RankedBy};
use crate::search::Recommendation;

/// A ranked list that pages are cut from.
struct Paged {
    /// The asking user: deleting the user drops their cursors.
    user: Option<String>,
    /// Whether the store knew the user when the list was ranked: if it no longer does, the
    /// user was deleted since (and the list was ranked from their history).
    user_known: bool,
    /// Which ask it answers (every field but the paging ones and `k`).
    fingerprint: u64,
    items: Vec<Recommendation>,
    ranked_by: RankedBy,
}

/// The items the asks of one page view have shown so far.
#[derive(Default)]
pub(crate) struct ViewShown {
    pub items: HashSet<String>,
}

struct Entry<T> {
    value: Arc<T>,
    created: Instant,
}

/// A table of entries that expire `ttl` after creation, at most `max` of them (the oldest go).
struct Table<K, T> {
    by_key: HashMap<K, Entry<T>>,
    /// Keys in creation order, for expiry and eviction.
    order: VecDeque<K>,
}

impl<K: std::hash::Hash + Eq + Clone, T> Table<K, T> {
    fn new() -> Self {
        Table {
            by_key: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, k: &K, ttl: Duration) -> Option<Arc<T>> {
        self.by_key
            .get(k)
            .filter(|e| e.created.elapsed() < ttl)
            .map(|e| e.value.clone())
    }

    /// Drop the expired entries, then, while the table is full, the oldest that nobody
    /// holds now (a page view being asked is held: dropping it would let its next row repeat
    /// items), then insert. Entries are in creation order with one lifetime, so the expired
    /// ones are at the front and the work is in proportion to what goes. Entries in use can
    /// take the table past `max`, by at most one per thread asking.
    fn insert(&mut self, k: K, value: Arc<T>, ttl: Duration, max: usize) {
        let now = Instant::now();
        while let Some(old) = self.order.front() {
            match self.by_key.get(old) {
                Some(e) if now.duration_since(e.created) < ttl => break,
                _ => {
                    if let Some(old) = self.order.pop_front() {
                        self.by_key.remove(&old);
                    }
                }
            }
        }
        let mut i = 0;
        while self.by_key.len() >= max.max(1) && i < self.order.len() {
            let held = self
                .by_key
                .get(&self.order[i])
                .is_some_and(|e| Arc::strong_count(&e.value) > 1);
            if held {
                i += 1;
            } else if let Some(old) = self.order.remove(i) {
                self.by_key.remove(&old);
            }
        }
        self.order.push_back(k.clone());
        self.by_key.insert(
            k,
            Entry {
                value,
                created: now,
            },
        );
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of these tables is one insert or one lookup: a panic leaves them whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The cursors and page views of one store.
pub(crate) struct Pages {
    cursors: Mutex<Table<u64, Paged>>,
    views: Mutex<Table<String, Mutex<ViewShown>>>,
    ttl: Duration,
    max: usize,
    /// Cursor ids: a counter hashed with SipHash under this process's random keys (std's
    /// `RandomState`), so one cursor tells nothing of the next one's id.
    next: AtomicU64,
    keys: std::collections::hash_map::RandomState,
}

/// A page: its items, who ranked them, and the cursor of the next page if any.
pub(crate) struct Page {
    pub items: Vec<Recommendation>,
    pub ranked_by: RankedBy,
    pub next_cursor: Option<String>,
}

/// `r` for the results `start..end` of the list it ranked: an interleaved answer's teams
/// are per result.
fn slice_ranked(r: &RankedBy, start: usize, end: usize) -> RankedBy {
    let mut r = r.clone();
    if let Some(i) = r.interleaved.as_mut() {
        let end = end.min(i.teams.len());
        i.teams = i
            .teams
            .get(start.min(end)..end)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
    }
    r
}

fn cursor_text(id: u64, offset: usize) -> String {
    format!("{id:016x}.{offset}")
}

fn parse_cursor(text: &str) -> Option<(u64, usize)> {
    let (id, offset) = text.split_once('.')?;
    if id.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(id, 16).ok()?, offset.parse().ok()?))
}

/// What identifies an ask across its pages: everything but `k`, the paging fields and `at`.
pub(crate) fn fingerprint(ask: &Ask) -> u64 {
    let mut a = ask.clone();
    a.k = 0;
    a.paged = false;
    a.cursor = None;
    a.at = None;
    let bytes = serde_json::to_vec(&a).unwrap_or_default();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

impl Pages {
    /// Tables whose entries expire after `ttl`, at most `max` cursors and `4 × max` views.
    pub(crate) fn new(ttl: Duration, max: usize) -> Pages {
        Pages {
            cursors: Mutex::new(Table::new()),
            views: Mutex::new(Table::new()),
            ttl,
            max,
            next: AtomicU64::new(0),
            keys: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Keep `items` (ranked for `ask`, whose user the store knew if `user_known`) and cut
    /// its first page of `k`.
    pub(crate) fn start(
        &self,
        ask: &Ask,
        user_known: bool,
        items: Vec<Recommendation>,
        ranked_by: RankedBy,
    ) -> Page {
        let k = ask.k;
        // k = 0 shows nothing, and its cursor would never move.
        if items.len() <= k || k == 0 {
            let mut items = items;
            items.truncate(k);
            let ranked_by = slice_ranked(&ranked_by, 0, items.len());
            return Page {
                items,
                ranked_by,
                next_cursor: None,
            };
        }
        let id = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = self.keys.build_hasher();
            h.write_u64(self.next.fetch_add(1, Relaxed));
            h.finish()
        };
        let paged = Arc::new(Paged {
            user: ask.user.clone(),
            user_known,
            fingerprint: fingerprint(ask),
            items,
            ranked_by,
        });
        let first = paged.items[..k].to_vec();
        let ranked_by = slice_ranked(&paged.ranked_by, 0, k);
        lock(&self.cursors).insert(id, paged, self.ttl, self.max);
        Page {
            items: first,
            ranked_by,
            next_cursor: Some(cursor_text(id, k)),
        }
    }

    /// The page `cursor` points at, `ask.k` long; `user_known`: whether the store knows the
    /// ask's user now.
    pub(crate) fn next(&self, ask: &Ask, cursor: &str, user_known: bool) -> Result<Page> {
        let bad = |reason: String| Error::InvalidQuery { reason };
        let (id, offset) = parse_cursor(cursor).ok_or_else(|| {
            bad(format!(
                "`{}` is not a cursor; pass the next_cursor of the previous page",
                crate::model::display_id(cursor)
            ))
        })?;
        let paged = lock(&self.cursors).get(&id, self.ttl).ok_or_else(|| {
            bad(format!(
                "cursor {id:016x} has expired (cursors last {} s, at most {} are kept, and \
                 none survives a restart or is known to another replica); ask for the first \
                 page again",
                self.ttl.as_secs(),
                self.max
            ))
        })?;
        if paged.user_known && !user_known {
            return Err(bad(format!(
                "cursor {id:016x} ranked a user who has been deleted since; ask again"
            )));
        }
        if paged.fingerprint != fingerprint(ask) {
            return Err(bad(
                "the cursor belongs to a different ask: pages must repeat the first page's \
                 ask (only k may change)"
                    .to_string(),
            ));
        }
        let start = offset.min(paged.items.len());
        let end = start.saturating_add(ask.k).min(paged.items.len());
        Ok(Page {
            items: paged.items[start..end].to_vec(),
            ranked_by: slice_ranked(&paged.ranked_by, start, end),
            next_cursor: (end < paged.items.len()).then(|| cursor_text(id, end)),
        })
    }

    /// The shared record of page view `id`, created on first use.
    pub(crate) fn view(&self, id: &str) -> Arc<Mutex<ViewShown>> {
        let mut t = lock(&self.views);
        if let Some(v) = t.get(&id.to_string(), self.ttl) {
            return v;
        }
        let v = Arc::new(Mutex::new(ViewShown::default()));
        t.insert(
            id.to_string(),
            v.clone(),
            self.ttl,
            self.max.saturating_mul(4),
        );
        v
    }

    /// Drop every cursor of the users named in `users` (they were deleted: their lists were
    /// ranked from their history).
    pub(crate) fn forget_users(&self, users: &[&str]) {
        let mut t = lock(&self.cursors);
        let t = &mut *t;
        let by_key = &mut t.by_key;
        t.order.retain(|k| {
            let mine = by_key
                .get(k)
                .is_some_and(|e| e.value.user.as_deref().is_some_and(|u| users.contains(&u)));
            if mine {
                by_key.remove(k);
            }
            !mine
        });
    }

    /// Cursors and page views held now (expired ones included until pushed out).
    pub(crate) fn held(&self) -> (usize, usize) {
        (lock(&self.cursors).len(), lock(&self.views).len())
    }
}

/// Lock a page view's record for one ask.
pub(crate) fn hold(v: &Mutex<ViewShown>) -> MutexGuard<'_, ViewShown> {
    lock(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Recommendation {
        Recommendation {
            id: id.into(),
            title: String::new(),
            score: 1.0,
            matched: Vec::new(),
            reasons: Vec::new(),
        }
    }

    #[test]
    fn cursors_expire_are_evicted_and_refuse_another_ask() {
        let pages = Pages::new(Duration::from_secs(60), 2);
        let ask = Ask::new(crate::scenario::Scenario::Trending).k(2);
        let list: Vec<Recommendation> = ["a", "b", "c", "d", "e"].map(rec).into();
        let first = pages.start(&ask, false, list.clone(), RankedBy::builtin());
        let c = first.next_cursor.expect("more pages");
        let p2 = pages.next(&ask, &c, false).expect("page 2");
        assert_eq!(
            p2.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
        let p3 = pages
            .next(&ask.clone().k(5), &p2.next_cursor.expect("page 3"), false)
            .expect("p3");
        assert_eq!(p3.items.len(), 1);
        assert!(p3.next_cursor.is_none());
        let other = Ask::new(crate::scenario::Scenario::Trending).user("x");
        assert!(pages.next(&other, &c, false).is_err(), "another ask");
        assert!(pages.next(&ask, "zz", false).is_err());
        // Two more cursors push the first out.
        pages.start(&ask, false, list.clone(), RankedBy::builtin());
        pages.start(&ask, false, list.clone(), RankedBy::builtin());
        let e = pages
            .next(&ask, &c, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("expired"), "{e}");
        let quick = Pages::new(Duration::ZERO, 10);
        let c = quick
            .start(&ask, false, list, RankedBy::builtin())
            .next_cursor
            .expect("c");
        assert!(
            quick.next(&ask, &c, false).is_err(),
            "a ttl of 0 expires at once"
        );
    }
}
