//! Every user's tag profile in one contiguous array, for the `users-like` scan, and how a
//! query tells which of its rows are still current.
//!
//! **Why.** A user's behaviour state is its own heap object and their explicit tags live in the
//! segment or the delta, so scoring users one by one was a chain of cache misses (about 250 ns
//! a user). Here the rows lie back to back and the scan streams through them.
//!
//! **Layout.** Per user, the union of explicit and derived tags sorted by tag id, each entry
//! holding both weights, so the decay of the derived part can still be applied at query time
//! (`f`, which depends on the store's clock then): with `e` the explicit and `d` the derived
//! weights, the profile is `e + f·d`, its dot product with the query `q·e + f·q·d` and its
//! squared norm `e·e + 2f·e·d + f²·d·d`, the three products kept per row.
//!
//! **Freshness.** A matrix is built from one snapshot and serves later ones. It keeps the maps
//! it was built from (O(1) clones): when a later snapshot's map is the same map (`ptr_eq`),
//! nothing changed; otherwise a walk over the map finds the users whose state is a different
//! object (the kept map holds the old objects alive, so an address cannot be reused) or whose
//! row was written after the matrix. Those rows are *stale*: the query skips them and scores
//! those users from the snapshot itself. A new segment generation, or more than an eighth of
//! the rows stale, builds a new matrix.

use std::sync::Arc;

use crate::activity::user::{decay, UserState};
use crate::codec::StoredUser;
use crate::delta::Entry;
use crate::snapshot::{Row, Snapshot};

/// One tag of one user's profile.
#[derive(Debug, Clone, Copy)]
struct Tag {
    tag: u32,
    explicit: f32,
    derived: f32,
}

/// One user's row: where its tags are and the products its norm needs.
#[derive(Debug, Clone, Copy)]
struct UserRow {
    id: u32,
    start: u32,
    end: u32,
    derived_at: u64,
    ee: f32,
    ed: f32,
    dd: f32,
}

/// The profiles of every live user with one, as of one snapshot.
#[derive(Debug)]
pub(crate) struct UserMatrix {
    generation: u64,
    seq: u64,
    states: imbl::HashMap<u32, Arc<UserState>>,
    rows_delta: imbl::HashMap<u32, Entry<StoredUser>>,
    /// By user id: the address of the state the row was built from (0: none).
    state_at: Vec<usize>,
    rows: Vec<UserRow>,
    tags: Vec<Tag>,
}

/// The users whose matrix rows a query must not use, by id.
pub(crate) struct Stale {
    bits: Vec<u64>,
    /// Each marked id once, in marking order.
    pub ids: Vec<u32>,
}

impl Stale {
    fn new(bound: u32) -> Stale {
        Stale {
            bits: vec![0; (bound as usize).div_ceil(64) + 1],
            ids: Vec::new(),
        }
    }

    fn mark(&mut self, id: u32) {
        let i = id as usize;
        if i / 64 >= self.bits.len() {
            self.bits.resize(i / 64 + 1, 0);
        }
        let bit = 1u64 << (i % 64);
        if self.bits[i / 64] & bit == 0 {
            self.bits[i / 64] |= bit;
            self.ids.push(id);
        }
    }

    /// Whether `id` is marked.
    #[inline]
    pub fn has(&self, id: u32) -> bool {
        let i = id as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
}

/// User `id`'s explicit tags, into `out`; false if the user is not live.
pub(crate) fn explicit_tags(snap: &Snapshot, id: u32, out: &mut Vec<(u32, f32)>) -> bool {
    out.clear();
    match snap.user_row(id) {
        Some(Row::Delta(r)) => out.extend_from_slice(&r.tags),
        Some(Row::Segment(i)) => {
            let (t, w) = snap.seg().users.forward.row(i);
            out.extend(t.iter().zip(w).map(|(t, w)| (t.to_native(), w.to_native())));
        }
        None => return false,
    }
    true
}

/// Merge explicit and derived tags (each sorted by id) into `out`, in id order, and return
/// the row's `(e·e, e·d, d·d)`. Matrix rows and stale users both go through this, [`dots`] and
/// [`finish`], so equal profiles get bit-equal scores and ties stay ordered by id.
fn merge(
    explicit: &[(u32, f32)],
    derived: &[(u32, f32)],
    mut out: impl FnMut(Tag),
) -> (f32, f32, f32) {
    let (mut i, mut j) = (0, 0);
    let (mut ee, mut ed, mut dd) = (0.0f32, 0.0f32, 0.0f32);
    loop {
        let (tag, explicit_w, derived_w) = match (explicit.get(i), derived.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                i += 1;
                j += 1;
                (a.0, a.1, b.1)
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                i += 1;
                (a.0, a.1, 0.0)
            }
            (Some(a), None) => {
                i += 1;
                (a.0, a.1, 0.0)
            }
            (_, Some(b)) => {
                j += 1;
                (b.0, 0.0, b.1)
            }
            (None, None) => break,
        };
        ee += explicit_w * explicit_w;
        ed += explicit_w * derived_w;
        dd += derived_w * derived_w;
        out(Tag {
            tag,
            explicit: explicit_w,
            derived: derived_w,
        });
    }
    (ee, ed, dd)
}

/// The query's dot products with one row's explicit and derived parts.
fn dots(row: impl Iterator<Item = Tag>, weight: &impl Fn(u32) -> f32) -> (f32, f32) {
    row.fold((0.0f32, 0.0f32), |(de, dd), t| {
        let w = weight(t.tag);
        (de + w * t.explicit, dd + w * t.derived)
    })
}

/// `(dot, squared norm)` of the profile `e + f·d` from its parts.
fn finish((de, dd): (f32, f32), (ee, ed, d2): (f32, f32, f32), f: f32) -> (f32, f32) {
    (de + f * dd, ee + 2.0 * f * ed + f * f * d2)
}

/// `(dot, squared norm)` of a profile given as explicit and derived tags, exactly as a matrix
/// row of the same profile scores: for the users a query finds stale.
pub(crate) fn score_direct(
    explicit: &[(u32, f32)],
    derived: &[(u32, f32)],
    f: f32,
    weight: impl Fn(u32) -> f32,
) -> (f32, f32) {
    let mut row = Vec::with_capacity(explicit.len() + derived.len());
    let norms = merge(explicit, derived, |t| row.push(t));
    finish(dots(row.into_iter(), &weight), norms, f)
}

impl UserMatrix {
    /// Lay out every live user's profile in `snap`.
    pub fn build(snap: &Snapshot) -> UserMatrix {
        let bound = snap.user_id_bound();
        let users = &snap.activity.users;
        let mut state_at = vec![0usize; bound as usize];
        for (&id, s) in users.iter() {
            if let Some(slot) = state_at.get_mut(id as usize) {
                *slot = Arc::as_ptr(s) as usize;
            }
        }
        let mut m = UserMatrix {
            generation: snap.segment.generation(),
            seq: snap.seq,
            states: users.clone(),
            rows_delta: snap.delta.users.clone(),
            state_at,
            rows: Vec::new(),
            tags: Vec::new(),
        };
        let mut explicit = Vec::new();
        for id in 0..bound {
            if !explicit_tags(snap, id, &mut explicit) {
                continue;
            }
            let state = users.get(&id);
            let derived = state.map_or(&[][..], |s| &s.derived[..]);
            let start = crate::narrow::u32_from(m.tags.len());
            let (ee, ed, dd) = merge(&explicit, derived, |t| m.tags.push(t));
            let end = crate::narrow::u32_from(m.tags.len());
            if end > start {
                m.rows.push(UserRow {
                    id,
                    start,
                    end,
                    derived_at: state.map_or(0, |s| s.derived_at),
                    ee,
                    ed,
                    dd,
                });
            }
        }
        m
    }

    /// Whether this matrix may serve `snap` at all: same segment, and not built from a later
    /// write (its rows could name users `snap` does not have).
    pub fn serves(&self, snap: &Snapshot) -> bool {
        self.generation == snap.segment.generation() && self.seq <= snap.seq
    }

    /// Users in the matrix.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The users whose rows differ from what `snap` holds.
    pub fn stale(&self, snap: &Snapshot) -> Stale {
        let mut stale = Stale::new(snap.user_id_bound());
        let users = &snap.activity.users;
        if !self.states.ptr_eq(users) {
            let mut present = Stale::new(snap.user_id_bound());
            for (&id, s) in users.iter() {
                present.mark(id);
                let was = self.state_at.get(id as usize).copied().unwrap_or(0);
                if was != Arc::as_ptr(s) as usize {
                    stale.mark(id);
                }
            }
            // State gone since (the user was deleted): the row's derived part is stale.
            for r in &self.rows {
                if self.state_at[r.id as usize] != 0 && !present.has(r.id) {
                    stale.mark(r.id);
                }
            }
        }
        if !self.rows_delta.ptr_eq(&snap.delta.users) {
            for (&id, e) in snap.delta.users.iter() {
                if e.seq > self.seq {
                    stale.mark(id);
                }
            }
        }
        stale
    }

    /// Offer every current row but `me`'s to `offer` as `(id, dot, squared norm)`, the
    /// derived part decayed to `now`. `weight` is the query's weight of a tag.
    pub fn scan(
        &self,
        stale: &Stale,
        me: u32,
        now: u64,
        half_life: f64,
        weight: impl Fn(u32) -> f32,
        mut offer: impl FnMut(u32, f32, f32),
    ) {
        for r in &self.rows {
            if r.id == me || stale.has(r.id) {
                continue;
            }
            let row = self
                .tags
                .get(r.start as usize..r.end as usize)
                .unwrap_or(&[]);
            let (de, dd) = dots(row.iter().copied(), &weight);
            if de <= 0.0 && dd <= 0.0 {
                continue;
            }
            // Only candidates pay for the decay (an `exp`).
            let f = decay(1.0, r.derived_at, now, half_life);
            let (dot, norm2) = finish((de, dd), (r.ee, r.ed, r.dd), f);
            offer(r.id, dot, norm2);
        }
    }
}
